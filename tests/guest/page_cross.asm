; A 64 KiB BIOS-replacement ROM for tests/e2e/bt.sh: code whose last
; instruction crosses a page boundary, run from RAM under paging.  A
; subroutine at linear 0x400ffa is INC EBX three times, ADD EAX, imm32 at
; 0x400ffd (the immediate's two high bytes are in the next page) and RET at
; 0x401002.  Each phase calls it 1000 times and compares EAX with the sum
; the ROM adds up itself:
;   1. as written: imm32 0xbbaa2211;
;   2. the second linear page remapped (PTE, INVLPG) to a physical page
;      whose bytes say 0xccdd....: imm32 0xccdd2211;
;   3. a store into that second physical page: imm32 0x77dd2211;
;   4. a store into the first page: imm32 0x77dd2233.
; The page tables have their A bits set: bt translates the crossing instruction
; only where it can fetch both pages without setting one (mmu.c).
; Exit status 33 through isa-debug-exit when all four hold; 35, 37, 39 or 41
; name the phase that did not.
%include "tests/guest/flat32_rom.inc"

PD      equ 0x20000             ; page directory
PT0     equ 0x21000             ; identity map of 0-4 MiB
PT1     equ 0x22000             ; 4-8 MiB: two pages of code
PAGE_A  equ 0x30000             ; linear 0x400000
PAGE_B  equ 0x31000             ; linear 0x401000, first
PAGE_C  equ 0x32000             ; linear 0x401000, after the remap
ROUTINE     equ 0x400ffa

FLAT32_ROM_START
    ; Page tables: 0-4 MiB identity, 0x400000 -> A, 0x401000 -> B.
    mov edi, PT0
    mov eax, 0x023              ; present, writable, accessed
    mov ecx, 1024
.identity:
    stosd
    add eax, 0x1000
    loop .identity
    mov dword [PD], PT0 | 0x23
    mov dword [PD + 4], PT1 | 0x23
    mov dword [PT1], PAGE_A | 0x23
    mov dword [PT1 + 4], PAGE_B | 0x23

    ; The subroutine's bytes, through the identity map.
    mov byte [PAGE_A + 0xffa], 0x43     ; inc ebx
    mov byte [PAGE_A + 0xffb], 0x43
    mov byte [PAGE_A + 0xffc], 0x43
    mov byte [PAGE_A + 0xffd], 0x05     ; add eax, imm32
    mov byte [PAGE_A + 0xffe], 0x11
    mov byte [PAGE_A + 0xfff], 0x22
    mov byte [PAGE_B + 0], 0xaa
    mov byte [PAGE_B + 1], 0xbb
    mov byte [PAGE_B + 2], 0xc3         ; ret
    mov byte [PAGE_C + 0], 0xdd
    mov byte [PAGE_C + 1], 0xcc
    mov byte [PAGE_C + 2], 0xc3

    mov eax, PD
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax

    mov esi, 0xbbaa2211
    call phase
    mov al, 0x11
    jne fail

    mov dword [PT1 + 4], PAGE_C | 0x23
    invlpg [ROUTINE + 6]
    mov esi, 0xccdd2211
    call phase
    mov al, 0x12
    jne fail

    mov byte [PAGE_C + 1], 0x77
    mov esi, 0x77dd2211
    call phase
    mov al, 0x13
    jne fail

    mov byte [PAGE_A + 0xffe], 0x33
    mov esi, 0x77dd2233
    call phase
    mov al, 0x14
    jne fail

    mov al, 0x10
fail:
    out 0xf4, al
    cli
    hlt

; 1000 calls of the subroutine; ZF set when EAX is the sum of ESI's.
phase:
    xor eax, eax
    xor edx, edx
    mov ecx, 1000
.round:
    mov edi, ROUTINE
    call edi
    add edx, esi
    dec ecx
    jnz .round
    cmp eax, edx
    ret

FLAT32_ROM_END
