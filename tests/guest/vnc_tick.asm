; A 64 KiB BIOS-replacement ROM for tests/e2e/vnc_hostile.sh: a heartbeat
; and a keyboard log on COM1.  The PIT ticks at 1 kHz; every 10 ticks of
; guest time the ROM writes '.' to the serial port, so the log grows at a
; steady rate while the machine runs and stops growing when the machine's
; thread is held up.  Every byte the 8042 hands over (a scancode that a VNC
; client's key event became) is written as "\nK" and two hex digits, so a
; test can tell whether any key reached the guest.  It never ends by itself.
%include "tests/guest/flat32_rom.inc"
%include "tests/guest/irq0_1khz.inc"

TICKS   equ 0x2000              ; the tick count (RAM)
COM1    equ 0x3f8

FLAT32_ROM_START
    mov dword [TICKS], 0
    IRQ0_1KHZ_START timer_irq
    xor esi, esi                ; tick count at the last '.'
    mov dx, COM1
    sti
.idle:
    hlt                         ; until the next tick
.keys:
    in al, 0x64
    test al, 1                  ; output buffer full: a byte from the keyboard
    jz .beat
    in al, 0x60
    mov bl, al
    mov ah, 'K'
    call log_byte
    jmp .keys
.beat:
    mov eax, [TICKS]
    sub eax, esi                ; ticks since the last '.'
    cmp eax, 10
    jb .idle
    add esi, eax                ; no catching up after a stall: one '.' per beat
    mov al, '.'
    out dx, al
    jmp .idle

%include "tests/guest/com1_hex.inc"

timer_irq:
    inc dword [TICKS]
    push eax
    mov al, 0x20                ; EOI
    out 0x20, al
    pop eax
    iret

    IRQ0_1KHZ_DATA

FLAT32_ROM_END
