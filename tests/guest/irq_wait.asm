; A 64 KiB BIOS-replacement ROM for tests/e2e/bt.sh: the PIT ticks at
; 1 kHz on IRQ0 and the handler counts the ticks.  STI sits in the middle of
; a block (the instructions after it run natively), then a loop of plain
; native instructions waits for ten ticks and leaves through isa-debug-exit
; (exit status 33).  An engine that never lets the interrupt in after the
; STI hangs here.
%include "tests/guest/flat32_rom.inc"

TICKS   equ 0x2000              ; the tick count (RAM)
IDT     equ 0x1000              ; 0x21 gates: vectors 0x00-0x20
ROM     equ 0xf0000             ; where the ROM's code runs (flat CS)

FLAT32_ROM_START
    mov dword [TICKS], 0
    mov eax, ROM + timer_irq    ; interrupt gate for vector 0x20 (IRQ0)
    mov [IDT + 0x20 * 8], ax
    mov word [IDT + 0x20 * 8 + 2], 0x08
    mov word [IDT + 0x20 * 8 + 4], 0x8e00
    shr eax, 16
    mov [IDT + 0x20 * 8 + 6], ax
    lidt [ROM + idt_ptr]

    mov al, 0x11                ; master PIC: ICW1-4, vectors 0x20-0x27
    out 0x20, al
    mov al, 0x20
    out 0x21, al
    mov al, 0x04
    out 0x21, al
    mov al, 0x01
    out 0x21, al
    mov al, 0xfe                ; only IRQ0
    out 0x21, al
    mov al, 0xff                ; slave: all masked
    out 0xa1, al

    mov al, 0x34                ; PIT channel 0, mode 2, 1193 = 1 kHz
    out 0x43, al
    mov al, 0xa9
    out 0x40, al
    mov al, 0x04
    out 0x40, al

    xor ecx, ecx
    sti
    add ecx, 1
    mov edx, ecx
.wait:
    cmp dword [TICKS], 10
    jb .wait

    cli
    mov al, 0x10
    out 0xf4, al
    hlt

timer_irq:
    inc dword [TICKS]
    push eax
    mov al, 0x20                ; EOI
    out 0x20, al
    pop eax
    iret

idt_ptr:
    dw 0x21 * 8 - 1
    dd IDT

FLAT32_ROM_END
