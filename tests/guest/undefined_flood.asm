; A 64 KiB BIOS-replacement ROM for tests/e2e/guest_log.sh: a guest that
; executes COUNT undefined opcodes (0F 04), each at its own address, and
; skips each one from its #UD handler; then MSRS reads of MSRs the CPU does
; not model, each skipped by the #GP handler; then it leaves through
; isa-debug-exit (exit status 33).  retrovisor logs undefined opcodes once
; per address, so without a rate limit this is COUNT lines on stderr.
%include "tests/guest/flat32_rom.inc"

%ifndef COUNT
%define COUNT 1000000
%endif
%ifndef MSRS
%define MSRS 1000
%endif
ROM     equ 0xf0000
IDT     equ 0x1000              ; gates for vectors 0-15
CODE    equ 0x100000            ; COUNT x "0F 04", then RET

FLAT32_ROM_START
    mov eax, ROM + ud_handler   ; vector 6: a 32-bit interrupt gate
    mov [IDT + 6 * 8], ax
    mov word [IDT + 6 * 8 + 2], 0x08
    mov word [IDT + 6 * 8 + 4], 0x8e00
    shr eax, 16
    mov [IDT + 6 * 8 + 6], ax
    mov eax, ROM + gp_handler   ; vector 13
    mov [IDT + 13 * 8], ax
    mov word [IDT + 13 * 8 + 2], 0x08
    mov word [IDT + 13 * 8 + 4], 0x8e00
    shr eax, 16
    mov [IDT + 13 * 8 + 6], ax
    lidt [ROM + idt_ptr]

    mov edi, CODE
    mov ecx, COUNT
    mov ax, 0x040f
    cld
    rep stosw
    mov byte [edi], 0xc3
    mov dword [SKIPPED], 0
    mov eax, CODE
    call eax

    cmp dword [SKIPPED], COUNT
    jne .bad

    mov dword [FAULTED], 0
    mov ecx, 0x40000000         ; a range no P6 defines
.msr:
    rdmsr                       ; two bytes: the #GP handler steps over them
    inc ecx
    cmp ecx, 0x40000000 + MSRS
    jne .msr
    cmp dword [FAULTED], MSRS
    jne .bad
    FLAT32_PASS_OR_BAD

SKIPPED equ 0x2000
FAULTED equ 0x2004

ud_handler:                     ; step over the two-byte opcode
    add dword [esp], 2
    inc dword [SKIPPED]
    iretd

gp_handler:                     ; drop the error code, step over RDMSR
    add esp, 4
    add dword [esp], 2
    inc dword [FAULTED]
    iretd

idt_ptr:
    dw 16 * 8 - 1
    dd IDT

FLAT32_ROM_END
