; A 64 KiB BIOS-replacement ROM for tests/e2e/bt.sh: a 64-bit sum whose
; carry crosses blocks.  The low half's ADD ends one block; its CF reaches
; the block in the next page that reads it (INC keeps CF, then ADC) through
; a chained jump, which bt makes with the flags in AX, or through a side
; exit (JC) to a third block that counts the carries first.  Exit status 33
; through isa-debug-exit when EDX:EAX is ROUNDS * K (nasm computes it) and
; the carries counted agree with the high half, 35 if not.
%include "tests/guest/flat32_rom.inc"

%define ROUNDS 100000
%define K 0x9e3779b9

FLAT32_ROM_START
    xor eax, eax
    xor edx, edx
    xor ecx, ecx
    xor edi, edi
    mov esi, K
    jmp round

align 4096
round:
    add eax, esi
    jc carried                 ; a side exit: the block goes on past it
    jmp carry

align 4096
carry:
    inc ecx                    ; keeps CF from the other page's ADD
    adc edx, 0
    cmp ecx, ROUNDS
    jb round
    cmp eax, (ROUNDS * K) & 0xffffffff
    jne .bad
    cmp edx, (ROUNDS * K) >> 32
    jne .bad
    cmp edi, edx
    jne .bad
    FLAT32_PASS_OR_BAD

align 4096
carried:
    inc edi                    ; keeps CF (set) for the ADC
    jmp carry

FLAT32_ROM_END
