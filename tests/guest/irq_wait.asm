; A 64 KiB BIOS-replacement ROM for tests/e2e/bt.sh: the PIT ticks at
; 1 kHz on IRQ0 and the handler counts the ticks.  STI sits in the middle of
; a block (the instructions after it run natively), then a loop of plain
; native instructions waits for ten ticks and leaves through isa-debug-exit
; (exit status 33).  An engine that never lets the interrupt in after the
; STI hangs here.
%include "tests/guest/flat32_rom.inc"
%include "tests/guest/irq0_1khz.inc"

TICKS   equ 0x2000              ; the tick count (RAM)

FLAT32_ROM_START
    mov dword [TICKS], 0
    IRQ0_1KHZ_START timer_irq

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

    IRQ0_1KHZ_DATA

FLAT32_ROM_END
