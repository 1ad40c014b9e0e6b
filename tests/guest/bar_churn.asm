; A Multiboot kernel for tests/e2e/bar_churn.sh (issue 26 #3, #5): it
; toggles the PIIX3 IDE function's I/O decode and moves its bus-master BAR
; (BAR4) and the VGA's register BAR (BAR2) ROUNDS times each, to addresses
; from a linear congruential sequence (never onto 0xCF0, which would hide
; configuration space); then it parks the bus-master BAR over 0xCF8-0xCFF
; and resets the machine through the keyboard controller.  SeaBIOS then
; boots: it needs 0xCF8/0xCFC and 0xCF9 back.  COM1 gets "churned" before
; the reset.
%include "tests/guest/multiboot.inc"

%ifndef ROUNDS
%define ROUNDS 1000000
%endif
COM1      equ 0x3f8
IDE       equ 0x80000900            ; CONFIG_ADDRESS of 00:01.1
VGA       equ 0x80001000            ; CONFIG_ADDRESS of 00:02.0

MULTIBOOT_HEADER 0

; cfg_write32 ADDR, REG, VALUE(reg/imm)
%macro cfg_write32 3
    mov eax, %1 + %2
    mov dx, 0xcf8
    out dx, eax
    mov eax, %3
    mov dx, 0xcfc
    out dx, eax
%endmacro

start:
    mov esp, stack_top
    cfg_write32 VGA, 0x04, 0x00000003   ; VGA: I/O and memory decode
    mov ebx, 12345                      ; the sequence
    mov ecx, ROUNDS
.round:
    imul ebx, ebx, 1103515245
    add ebx, 12345
    ; IDE decode off, BAR4 to a new port, decode on
    cfg_write32 IDE, 0x04, 0
    mov esi, ebx
    shr esi, 8
    and esi, 0xfff0
    cmp esi, 0x0cf0                     ; not over configuration space, yet
    jne .port_ok
    mov esi, 0xc000
.port_ok:
    or esi, 1
    cfg_write32 IDE, 0x20, esi
    cfg_write32 IDE, 0x04, 0x00000001
    ; VGA BAR2 (4 KiB of registers) somewhere in the PCI hole
    mov esi, ebx
    and esi, 0x0ffff000
    or esi, 0xe0000000
    cfg_write32 VGA, 0x18, esi
    dec ecx
    jnz .round

    mov esi, msg_churned
    call puts
    ; Hide configuration space under the bus-master BAR, then reset.
    cfg_write32 IDE, 0x20, 0x00000cf1
    mov al, 0xfe
    out 0x64, al
.hang:
    hlt
    jmp .hang

putc:
    push edx
    push eax
    mov dx, COM1 + 5
.wait:
    in al, dx
    test al, 0x20
    jz .wait
    pop eax
    mov dx, COM1
    out dx, al
    pop edx
    ret

puts:
    lodsb
    test al, al
    jz .end
    call putc
    jmp puts
.end:
    ret

msg_churned: db "churned", 10, 0

MULTIBOOT_BSS
MULTIBOOT_END
