; A 64 KiB BIOS-replacement ROM for tests/e2e/window.sh's mouse grab: it
; turns on the 8042's auxiliary port and the PS/2 mouse's data reporting
; (so the window offers to grab the pointer), says "READY" on COM1, then
; writes every byte the 8042 hands over as "\nM" (from the mouse) or "\nK"
; (from the keyboard) and two hex digits.  It never ends by itself.
%include "tests/guest/flat32_rom.inc"
%include "tests/guest/irq0_1khz.inc"

COM1    equ 0x3f8

FLAT32_ROM_START
    IRQ0_1KHZ_START timer_irq
    mov al, 0xa8                ; enable the auxiliary port
    call kbc_command
    mov al, 0xd4                ; the next data byte goes to the mouse
    call kbc_command
    mov al, 0xf4                ; enable data reporting
    call kbc_data
    mov dx, COM1
    mov esi, 0xf0000 + ready    ; the ROM is at 0xF0000 in the flat space
.say:
    lodsb
    test al, al
    jz .idle
    out dx, al
    jmp .say
.idle:
    sti
    hlt                         ; until the next 1 ms tick
.bytes:
    in al, 0x64
    test al, 1                  ; output buffer full
    jz .idle
    mov ah, 'K'
    test al, 0x20               ; ... with a byte from the mouse
    jz .read
    mov ah, 'M'
.read:
    in al, 0x60
    mov bl, al
    call log_byte
    jmp .bytes

kbc_wait_input_empty:
    in al, 0x64
    test al, 2
    jnz kbc_wait_input_empty
    ret

kbc_command:                    ; al -> port 0x64
    mov ah, al
    call kbc_wait_input_empty
    mov al, ah
    out 0x64, al
    ret

kbc_data:                       ; al -> port 0x60
    mov ah, al
    call kbc_wait_input_empty
    mov al, ah
    out 0x60, al
    ret

%include "tests/guest/com1_hex.inc"

timer_irq:
    push eax
    mov al, 0x20                ; EOI
    out 0x20, al
    pop eax
    iret

ready: db "READY", 10, 0

    IRQ0_1KHZ_DATA

FLAT32_ROM_END
