; retrovisor's Linux boot option ROM (fw_cfg file genroms/linuxboot.bin).
;
; For -kernel with a bzImage the monitor does not load the kernel itself: it
; offers the pieces through QEMU's standard fw_cfg keys (the real-mode setup
; with its header already filled in, the protected-mode kernel, the command
; line and the initrd, each with its load address and size), and SeaBIOS runs
; this ROM's boot entry vector (BEV) first, as "bootorder" asks.  By then
; SeaBIOS and SeaVGABIOS have set the machine up (text mode has its font, the
; ACPI tables and the e820 map are in place).  The ROM copies every piece to
; its address with fw_cfg DMA, which reaches memory above 1 MiB from real
; mode, and enters the kernel's real-mode setup code at SETUP_ADDR + 0x200,
; as the boot protocol says (Documentation/arch/x86/boot.rst).
;
; The monitor fixes the last byte (the checksum) when it adds the ROM.

bits 16
cpu 686

FW_CFG_PORT_SEL   equ 0x510
FW_CFG_PORT_DATA  equ 0x511
FW_CFG_PORT_DMA   equ 0x514         ; 0x514: address bits 63-32, 0x518: bits 31-0, big-endian
FW_CFG_KERNEL_ADDR   equ 0x07
FW_CFG_KERNEL_SIZE   equ 0x08
FW_CFG_INITRD_ADDR   equ 0x0a
FW_CFG_INITRD_SIZE   equ 0x0b
FW_CFG_KERNEL_DATA   equ 0x11
FW_CFG_INITRD_DATA   equ 0x12
FW_CFG_CMDLINE_ADDR  equ 0x13
FW_CFG_CMDLINE_SIZE  equ 0x14
FW_CFG_CMDLINE_DATA  equ 0x15
FW_CFG_SETUP_ADDR    equ 0x16
FW_CFG_SETUP_SIZE    equ 0x17
FW_CFG_SETUP_DATA    equ 0x18
DMA_CTL_ERROR  equ 0x01
DMA_CTL_READ   equ 0x02
DMA_CTL_SELECT equ 0x08
HDR_HEAP_END_PTR equ 0x224          ; setup header: end of the setup heap - 0x200

rom_start:
    db 0x55, 0xaa
    db (rom_end - rom_start) / 512
    jmp init                        ; offset 3: the BIOS's far call at POST
    times 0x18 - ($ - rom_start) db 0
    dw 0                            ; no PCI data structure
    dw pnp_header                   ; offset 0x1a

    align 16
pnp_header:
    db '$PnP'
    db 1                            ; revision
    db 2                            ; length in 16-byte units
    dw 0                            ; no next header
    db 0
    db 0                            ; checksum (SeaBIOS does not check it)
    dd 0                            ; device id
    dw manufacturer
    dw product
    db 0, 0, 0                      ; device type
    db 0                            ; device indicators
    dw 0                            ; no boot connection vector
    dw 0                            ; no disconnect vector
    dw bev                          ; boot entry vector
    dw 0
    dw 0                            ; no static resource information

manufacturer: db 'retrovisor', 0
product:      db 'Linux kernel (-kernel)', 0
failed_msg:   db 'linuxboot: fw_cfg could not load the kernel', 13, 10, 0

init:
    retf                            ; nothing to set up before boot

; eax = the 32-bit item bx (fw_cfg's data port gives it byte by byte, LSB first).
read_item32:
    mov dx, FW_CFG_PORT_SEL
    mov ax, bx
    out dx, ax
    mov dx, FW_CFG_PORT_DATA
    in al, dx
    ror eax, 8
    in al, dx
    ror eax, 8
    in al, dx
    ror eax, 8
    in al, dx
    ror eax, 8
    ret

; Copy ecx bytes of item bx to physical address edi through fw_cfg DMA.
; The descriptor lives on the stack (RAM, as the device needs).  CF set on error.
dma_item:
    push bp
    sub sp, 16
    mov bp, sp
    movzx eax, bx
    shl eax, 16
    or eax, DMA_CTL_SELECT | DMA_CTL_READ
    bswap eax
    mov [bp + 0], eax               ; control
    mov eax, ecx
    bswap eax
    mov [bp + 4], eax               ; length
    mov dword [bp + 8], 0           ; address bits 63-32
    mov eax, edi
    bswap eax
    mov [bp + 12], eax              ; address bits 31-0
    xor eax, eax
    mov dx, FW_CFG_PORT_DMA
    out dx, eax                     ; descriptor address bits 63-32: 0
    mov ax, ss
    shl eax, 4
    movzx edx, bp
    add eax, edx
    bswap eax
    mov dx, FW_CFG_PORT_DMA + 4
    out dx, eax                     ; the transfer runs now
    mov eax, [bp + 0]
    bswap eax
    add sp, 16
    pop bp
    test eax, DMA_CTL_ERROR
    jnz .error
    clc
    ret
.error:
    stc
    ret

; Load one piece: size item, address item, data item.  Skipped when empty.
%macro LOAD_PIECE 3
    mov bx, %1
    call read_item32
    mov ecx, eax
    test ecx, ecx
    jz %%skip
    mov bx, %2
    call read_item32
    mov edi, eax
    mov bx, %3
    call dma_item
    jc fail
%%skip:
%endmacro

bev:
    cli
    cld
    LOAD_PIECE FW_CFG_SETUP_SIZE, FW_CFG_SETUP_ADDR, FW_CFG_SETUP_DATA
    LOAD_PIECE FW_CFG_KERNEL_SIZE, FW_CFG_KERNEL_ADDR, FW_CFG_KERNEL_DATA
    LOAD_PIECE FW_CFG_CMDLINE_SIZE, FW_CFG_CMDLINE_ADDR, FW_CFG_CMDLINE_DATA
    LOAD_PIECE FW_CFG_INITRD_SIZE, FW_CFG_INITRD_ADDR, FW_CFG_INITRD_DATA

    ; The boot protocol's entry state: ds = es = fs = gs = ss = the setup's
    ; segment, sp at the top of its heap, interrupts off; cs:ip = seg+0x20:0.
    mov bx, FW_CFG_SETUP_ADDR
    call read_item32
    shr eax, 4
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    mov sp, [HDR_HEAP_END_PTR]
    add sp, 0x200
    add ax, 0x20
    push ax
    push word 0
    retf

; Tell the user on the screen, and give the boot back to the BIOS.
fail:
    sti
    mov si, failed_msg
.next:
    cs lodsb
    test al, al
    jz .done
    mov ah, 0x0e
    mov bx, 7
    int 0x10
    jmp .next
.done:
    retf

    ; Pad to whole 512-byte blocks; the last byte is the checksum.
    times ((($ - rom_start) + 1 + 511) / 512) * 512 - ($ - rom_start) - 1 db 0
checksum: db 0
rom_end:
