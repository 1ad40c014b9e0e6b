; A 64 KiB BIOS-replacement ROM for tests/e2e/bt.sh: a block that starts
; with CALL (nothing earlier in it wrote ESP), a subroutine that returns at
; once, and a check that ESP is back where it was.  Exit status 33 through
; isa-debug-exit when it is; a translator that keeps ESP in a host register
; and forgets to store it at the CALL's exit returns to garbage instead.
%include "tests/guest/flat32_rom.inc"

FLAT32_ROM_START
    mov ecx, 1000
    jmp .again                  ; (bt decodes on at .again; JNZ below starts a block with the CALL)
.again:
    call subroutine
    cmp esp, 0x90000
    jne .bad
    dec ecx
    jnz .again
    mov al, 0x10
    out 0xf4, al
.bad:
    cli
    hlt

subroutine:
    ret

FLAT32_ROM_END
