; A 64 KiB BIOS-replacement ROM for tests/e2e/bt.sh: a block whose two
; [EBX + disp] operands reach their page only by wrapping at 4 GiB
; (0xfffff800 + 0x1800 = 0x1000).  bt checks such a register's page once at
; the block's entry and then adds the register to the page's host address
; in 64 bits, so the check must refuse a range that wraps.  Exit status 33
; through isa-debug-exit when both loads read what was stored, 35 if not.
%include "tests/guest/flat32_rom.inc"

FLAT32_ROM_START
    mov dword [0x1000], 0x11111111
    mov dword [0x1004], 0x22222222
    mov ebx, 0xfffff800
    mov edx, 1000
    jmp .round                  ; (bt decodes on at .round; JNZ below starts a block with the loads)
.round:
    mov eax, [ebx + 0x1800]
    mov ecx, [ebx + 0x1804]
    cmp eax, 0x11111111
    jne .bad
    cmp ecx, 0x22222222
    jne .bad
    dec edx
    jnz .round
    FLAT32_PASS_OR_BAD

FLAT32_ROM_END
