; A 64 KiB BIOS-replacement ROM for tests/e2e/bt.sh: a loop whose first
; block reads and writes [ESP + disp] operands (bt covers them with one
; check of ESP's page at the block's entry) and whose second block drops
; that page from the TLB with INVLPG.  Each round the first block's entry
; check fails; bt_run must put the page back in the TLB and run the block
; again (or let the interpreter take its first instruction), never loop on
; the failed check nor lose a store.  Exit status 33 through isa-debug-exit
; when the sums in memory and in EBX agree after 1000 rounds, 35 if not.
%include "tests/guest/flat32_rom.inc"

FLAT32_ROM_START
    sub esp, 16
    mov dword [esp + 4], 3
    mov dword [esp + 8], 0
    xor ebx, ebx
    mov ecx, 1000
    jmp .round
.round:
    mov eax, [esp + 4]
    add eax, [esp + 8]
    mov [esp + 8], eax
    add ebx, 3
    invlpg [esp]
    dec ecx
    jnz .round
    cmp ebx, [esp + 8]
    jne .bad
    cmp ebx, 3000
    jne .bad
    FLAT32_PASS_OR_BAD

FLAT32_ROM_END
