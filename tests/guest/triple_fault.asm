; A 64 KiB BIOS-replacement ROM that says "R" on COM1, then triple-faults:
; with an IDT of limit 0, int3 raises #GP, which raises #DF, which cannot be
; delivered either.  Every reset starts it again, so the serial log counts
; the starts.  tests/e2e/guest_log.sh runs it.
%include "tests/guest/flat32_rom.inc"

FLAT32_ROM_START
    mov dx, 0x3f8
    mov al, 'R'
    out dx, al
    lidt [0xf0000 + empty_idt]
    int3
    hlt                         ; never reached

empty_idt:
    dw 0
    dd 0

FLAT32_ROM_END
