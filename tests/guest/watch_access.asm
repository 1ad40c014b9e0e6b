; A 64 KiB BIOS-replacement ROM for the watchpoints of tests/e2e/gdb.sh:
; in flat 32-bit protected mode, with interrupts off, a fixed sequence of
; accesses to the dword at WATCHED, each instruction followed by a label
; the test finds in nasm's listing (the EIP a watchpoint's stop must
; report is the linear address of the label after the accessing
; instruction).  Then exit status 33 through isa-debug-exit.
%include "tests/guest/flat32_rom.inc"

WATCHED equ 0x5000

FLAT32_ROM_START
    mov eax, 0x99
    mov dword [WATCHED], 0x11223344     ; a write
after_store:
    mov eax, [WATCHED]                  ; a read
after_load:
    mov [WATCHED], eax                  ; a write of the value already there
after_same_store:
    mov bx, [WATCHED + 3]               ; a read of the last byte and the one after it
after_overlap_load:
    add dword [WATCHED], 1              ; a read and a write
after_rmw:
    mov edi, WATCHED - 8
    mov ecx, 4
    mov eax, 0x55aa55aa
rep_store:
    rep stosd                           ; four writes, the third at WATCHED
after_rep:
    mov eax, [WATCHED + 4]              ; next to the dword, not in it
after_beside:
    FLAT32_PASS_OR_BAD

FLAT32_ROM_END
