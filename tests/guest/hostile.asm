; The hostile-guest fuzzer (issue 23): a 64 KiB BIOS-replacement ROM that
; performs OPS random device operations from the xorshift sequence seeded by
; SEED (nasm -DSEED=N -DOPS=M), then leaves through isa-debug-exit with 0x10
; (exit status 33).  tests/e2e/hostile.sh runs it under both engines.
;
; The operations:
;   - reads, and writes read back, of random sizes and values at random
;     I/O ports;
;   - loads and stores in the VGA window, the LFB and register BARs, the APIC
;     areas and anywhere in the 4 GiB;
;   - PCI configuration reads and writes, random and targeted, with the IDE
;     bus-master BAR and the VGA's BARs moved to random addresses and their
;     decode toggled;
;   - IDE commands (PIO and DMA, random LBAs and counts) with a bus-master
;     descriptor of random address and length, started and stopped;
;   - VGA sequencer/graphics/CRTC and Bochs VBE (DISPI) registers;
;   - ISA DMA channel 2 programmed at random and random bytes to the floppy
;     controller (tests/e2e/hostile.sh gives it a disk in A:), with resets;
;   - one in eight operations goes to the other devices (op_devices): the
;     PCnet (its registers in both I/O modes, initialisation blocks of every
;     style, receive and transmit rings with random or plausible buffer
;     addresses and lengths, ARP requests that slirp answers into the
;     receive ring), the NE2000 (registers on every page, remote DMA of
;     random address and length in every width, transmits, receive ring
;     bounds, ARP requests), ATAPI packets on the secondary channel (a CD in
;     it) with PIO data and bus-master DMA, fw_cfg selectors and data and
;     DMA descriptors of random control, length and address, the ACPI PM
;     block, pc-testdev's ports, IRQ lines and I/O memory, every ISA DMA
;     channel's registers, the local APIC's registers and the I/O APIC's
;     indirect ones.  The network cards' and the PM block's BARs now and then
;     move to a random port and back.
;
; The ROM keeps all of its state in registers and uses no RAM that it needs
; (the descriptor table is rewritten before each use; the stack only holds an
; NMI's return frame): DMA and stray stores may overwrite any RAM.  It runs
; with interrupts disabled, its IDT in the ROM (rom_idt).
; What it must not do, because the run would end or the fuzzer would lose
; itself rather than the monitor being tested: write 0x64 (keyboard
; controller commands: reset, A20), 0x92 (fast reset, A20), 0xCF9 (reset)
; or 0xF4-0xF7 (debug exit); reach configuration space other than through
; its own accesses (0xCF8-0xCFF); change the i440FX (PAM could unmap this
; ROM); put the bus-master BAR over 0xCF8 or 0xF4; set SLP_EN in the PM
; block (S5 powers off), so random ports skip PM_IO and configuration
; writes skip the PM function.
;
; A device added to the machine joins this fuzzer: give it an operation
; kind (its registers, its DMA) next to the ones below.
;
; Registers: EBX the xorshift state, ECX operations left, EBP the IDE
; bus-master base port (0 when none), EAX/EDX/ESI/EDI scratch.
%include "tests/guest/flat32_rom.inc"

%ifndef SEED
%define SEED 1
%endif
%ifndef OPS
%define OPS 100000
%endif
PRD      equ 0x1000             ; the bus-master descriptor table
IDE_CFG  equ 0x80000900         ; 00:01.1
VGA_CFG  equ 0x80001000         ; 00:02.0
LFB      equ 0xfd000000
VGA_REGS equ 0xfebf0000
PM_CFG   equ 0x80000b00         ; 00:01.3, the PIIX4-style power management function
PCNET_CFG equ 0x80001800        ; 00:03.0 (the first -device: tests/e2e/hostile.sh)
NE2K_CFG equ 0x80002000         ; 00:04.0 (the second)
PM_IO    equ 0x600              ; its 64 ports; SLP_EN is never written (S5 would end the run)
PCNET_IO equ 0xd000             ; 32 ports
NE2K_IO  equ 0xd100             ; 32 ports
PRD2     equ 0x1100             ; the secondary channel's bus-master descriptor
FWD      equ 0x1200             ; an fw_cfg DMA descriptor
PC_IB    equ 0x3000             ; PCnet initialisation block
PC_RX    equ 0x4000             ; PCnet rings (8 descriptors of up to 16 bytes)
PC_TX    equ 0x5000
PC_TXBUF equ 0x6000             ; a frame to send
PC_RXBUF equ 0x7000             ; receive buffers, 1536 bytes each

; RAND: EAX = the next number of the sequence (EBX the state, never 0).
%macro RAND 0
    mov eax, ebx
    shl eax, 13
    xor ebx, eax
    mov eax, ebx
    shr eax, 17
    xor ebx, eax
    mov eax, ebx
    shl eax, 5
    xor ebx, eax
    mov eax, ebx
%endmacro

; CFG_SELECT base, offset-register: CONFIG_ADDRESS = base | (reg & 0xfc); DX = 0xCFC + (reg & 3)
%macro CFG_SELECT 2
    mov eax, %2
    and eax, 0xfc
    or eax, %1
    mov dx, 0xcf8
    out dx, eax
    mov edx, %2
    and edx, 3
    add edx, 0xcfc
%endmacro

; CFG_WRITE32 base, offset, value
%macro CFG_WRITE32 3
    mov eax, %1 + %2
    mov dx, 0xcf8
    out dx, eax
    mov eax, %3
    mov dx, 0xcfc
    out dx, eax
%endmacro

FLAT32_ROM_START
    cli
    lidt [0xf0000 + rom_idt_ptr]
    mov ebx, (SEED * 2654435761 + 1) & 0xffffffff
    test ebx, ebx
    jnz .seeded
    mov ebx, 1
.seeded:
    mov ecx, OPS
    CFG_WRITE32 IDE_CFG, 0x20, 0xc001
    CFG_WRITE32 IDE_CFG, 0x04, 0x5                  ; I/O decode, bus master
    mov ebp, 0xc000
    CFG_WRITE32 VGA_CFG, 0x10, LFB
    CFG_WRITE32 VGA_CFG, 0x18, VGA_REGS
    CFG_WRITE32 VGA_CFG, 0x04, 0x3
    CFG_WRITE32 PM_CFG, 0x40, PM_IO | 1
    CFG_WRITE32 PM_CFG, 0x80, 1                     ; PMIOSE: the block decodes

next_op:
    RAND
    mov esi, eax
    shr esi, 29                                     ; eight kinds of operation
    test esi, esi
    jz op_port
    cmp esi, 2
    jb op_devices
    je op_memory
    cmp esi, 4
    jb op_config
    je op_bars
    cmp esi, 6
    jb op_ide_dma
    je op_ide_pio
    test eax, 1 << 28                               ; the eighth kind is split in two
    jz op_vga
    jmp op_floppy

; ---- a random port, size, direction and value ----
op_port:
    RAND
    mov edx, eax
    and edx, 0xffff
    cmp edx, 0x64
    je op_done
    cmp edx, 0x92
    je op_done
    cmp edx, 0xf4 - 3                               ; no access may reach 0xF4-0xF7
    jb .allowed
    cmp edx, 0xf7
    jbe op_done
    cmp edx, PM_IO - 3                              ; nor the PM block
    jb .allowed
    cmp edx, PM_IO + 0x3f
    jbe op_done
    cmp edx, 0xcf8 - 3                              ; nor 0xCF8-0xCFF
    jb .allowed
    cmp edx, 0xcff
    jbe op_done
.allowed:
    RAND
    test eax, 1 << 31
    jz .read
    test eax, 1 << 30
    jz .write8
    test eax, 1 << 29
    jz .write16
    out dx, eax                                     ; written, then read back
    in eax, dx
    jmp op_done
.write16:
    out dx, ax
    in ax, dx
    jmp op_done
.write8:
    out dx, al
    in al, dx
    jmp op_done
.read:
    test eax, 1 << 30
    jz .read8
    test eax, 1 << 29
    jz .read16
    in eax, dx
    jmp op_done
.read16:
    in ax, dx
    jmp op_done
.read8:
    in al, dx
    jmp op_done

; ---- a load or store somewhere interesting, or anywhere ----
op_memory:
    RAND
    mov edi, eax
    mov esi, eax
    shr esi, 29
    cmp esi, 1
    jb .vga_window
    je .lfb
    cmp esi, 3
    jb .regs
    je .lapic
    cmp esi, 4
    je .ioapic
    jmp .go                                         ; anywhere in the 4 GiB
.vga_window:
    and edi, 0x1ffff
    add edi, 0xa0000
    jmp .go
.lfb:
    and edi, 0xffffff
    add edi, LFB
    jmp .go
.regs:
    and edi, 0xfff
    add edi, VGA_REGS
    jmp .go
.lapic:
    and edi, 0xfff
    add edi, 0xfee00000
    jmp .go
.ioapic:
    and edi, 0xff
    add edi, 0xfec00000
.go:
    RAND
    test eax, 1 << 31
    jz .load
    test eax, 1 << 30
    jz .store8
    test eax, 1 << 29
    jz .store16
    mov [edi], eax
    jmp op_done
.store16:
    mov [edi], ax
    jmp op_done
.store8:
    mov [edi], al
    jmp op_done
.load:
    test eax, 1 << 30
    jz .load8
    test eax, 1 << 29
    jz .load16
    mov eax, [edi]
    jmp op_done
.load16:
    mov ax, [edi]
    jmp op_done
.load8:
    mov al, [edi]
    jmp op_done

; ---- a configuration access: any function but the host bridge's writes ----
op_config:
    RAND
    mov esi, eax                                    ; bits 0-7 register, 8-15 devfn
    mov edi, eax
    shr edi, 8
    and edi, 0xff
    test eax, 1 << 31
    jnz .known
    test edi, edi                                   ; bus 0 device 0 is the i440FX
    jz op_done
    jmp .access
.known:                                             ; mostly the functions that exist
    and edi, 0x3
    cmp edi, 1
    jb .isa
    je .ide
    mov edi, 0x10
    jmp .access
.isa:
    mov edi, 0x08
    jmp .access
.ide:
    mov edi, 0x09
.access:
    shl edi, 8
    or edi, 0x80000000
    and esi, 0xff
    CFG_SELECT edi, esi
    RAND
    test eax, 1 << 31
    jz .read
    cmp edi, PM_CFG                                 ; its PMBA could land on random ports
    je op_done
    test eax, 1 << 30
    jz .write8
    test eax, 1 << 29
    jz .write16
    out dx, eax
    jmp .written
.write16:
    out dx, ax
    jmp .written
.write8:
    out dx, al
.written:
    cmp edi, IDE_CFG
    je ide_bar_check
    jmp op_done
.read:
    in eax, dx
    jmp op_done

; ---- BARs to random places, decode toggled ----
op_bars:
    RAND
    mov esi, eax
    and esi, 3
    cmp esi, 1
    jb .ide_bar
    je .lfb_bar
    cmp esi, 2
    je .regs_bar
    RAND                                            ; COMMAND of the IDE or the VGA
    mov edi, eax
    and eax, 0x7
    test edi, 1 << 31
    jz .vga_command
    mov esi, eax
    CFG_WRITE32 IDE_CFG, 0x04, esi
    jmp ide_bar_check
.vga_command:
    mov esi, eax
    CFG_WRITE32 VGA_CFG, 0x04, esi
    jmp op_done
.ide_bar:
    RAND
    mov esi, eax
    CFG_WRITE32 IDE_CFG, 0x20, esi
    jmp ide_bar_check
.lfb_bar:
    RAND
    mov esi, eax
    CFG_WRITE32 VGA_CFG, 0x10, esi
    jmp op_done
.regs_bar:
    RAND
    mov esi, eax
    test esi, 1 << 30                               ; sometimes the ROM BAR instead
    jz .rom_bar
    CFG_WRITE32 VGA_CFG, 0x18, esi
    jmp op_done
.rom_bar:
    CFG_WRITE32 VGA_CFG, 0x30, esi
    jmp op_done

; After any write to the IDE function: keep its bus-master BAR off 0xCF8
; and 0xF4 (the fuzzer needs both), and note where it decodes now.
ide_bar_check:
    mov eax, IDE_CFG + 0x20
    mov dx, 0xcf8
    out dx, eax
    mov dx, 0xcfc
    in eax, dx
    and eax, 0xfffffff0
    cmp eax, 0xcf0                                  ; 0xCF0-0xCFF holds 0xCF8
    je .move
    cmp eax, 0xf0                                   ; 0xF0-0xFF holds 0xF4
    jne .placed
.move:
    CFG_WRITE32 IDE_CFG, 0x20, 0xc001
    mov eax, 0xc000
.placed:
    mov esi, eax
    mov eax, IDE_CFG + 0x04
    mov dx, 0xcf8
    out dx, eax
    mov dx, 0xcfc
    in eax, dx
    xor ebp, ebp
    test al, 1                                      ; I/O decode off: nothing there
    jz op_done
    test esi, esi
    jz op_done
    cmp esi, 0x10000 - 16
    ja op_done
    mov ebp, esi
    jmp op_done

; ---- IDE command with a bus-master transfer of a random descriptor ----
op_ide_dma:
    RAND
    mov [PRD], eax                                  ; physical region base
    RAND
    mov [PRD + 4], eax                              ; count, EOT in bit 31
    test ebp, ebp
    jz .command
    mov edx, ebp
    add edx, 4
    RAND
    test eax, 1 << 31
    jz .own_table
    mov eax, PRD
.own_table:
    out dx, eax                                     ; the descriptor table's address
.command:
    mov dx, 0x1f6
    RAND
    and al, 0x10
    or al, 0xe0
    out dx, al                                      ; LBA mode, drive 0 or 1
    RAND
    mov dx, 0x1f2
    out dx, al                                      ; sector count
    mov dx, 0x1f3
    shr eax, 8
    out dx, al
    mov dx, 0x1f4
    shr eax, 8
    out dx, al
    mov dx, 0x1f5
    shr eax, 8
    out dx, al                                      ; LBA 0-23
    RAND
    mov esi, eax
    and esi, 3
    mov al, 0xc8                                    ; READ DMA
    cmp esi, 1
    jb .issue
    mov al, 0xca                                    ; WRITE DMA
    je .issue
    mov al, 0x25                                    ; READ DMA EXT
    cmp esi, 2
    je .issue
    mov al, 0x35                                    ; WRITE DMA EXT
.issue:
    mov dx, 0x1f7
    out dx, al
    test ebp, ebp
    jz op_done
    mov edx, ebp
    RAND
    and al, 0x08                                    ; direction
    or al, 0x01                                     ; start
    out dx, al
    add edx, 2
    in al, dx                                       ; status
    out dx, al                                      ; write back: clears interrupt/error
    mov dx, 0x1f7
    in al, dx
    mov edx, ebp
    xor eax, eax
    out dx, al                                      ; stop
    jmp op_done

; ---- any ATA command, and PIO data both ways ----
op_ide_pio:
    RAND
    mov dx, 0x1f6
    mov esi, eax
    and al, 0x10
    or al, 0xe0
    out dx, al
    mov eax, esi
    shr eax, 8
    mov dx, 0x1f2
    out dx, al
    shr eax, 8
    mov dx, 0x1f1
    out dx, al                                      ; features
    shr eax, 8
    mov dx, 0x1f7
    out dx, al                                      ; the command: any byte
    RAND
    mov esi, eax
    and esi, 0x3ff                                  ; up to 1023 words of data
    mov dx, 0x1f0
.data:
    test esi, esi
    jz .status
    test eax, 1
    jz .in_word
    out dx, ax
    jmp .word_done
.in_word:
    in ax, dx
.word_done:
    dec esi
    jmp .data
.status:
    mov dx, 0x3f6
    in al, dx
    RAND
    test eax, 1 << 31
    jz op_done
    and al, 0x06                                    ; sometimes SRST / nIEN
    out dx, al
    xor al, al
    out dx, al
    jmp op_done

; ---- VGA and Bochs VBE registers ----
op_vga:
    RAND
    mov esi, eax
    and esi, 3
    mov dx, 0x3c4                                   ; sequencer
    cmp esi, 1
    jb .indexed
    mov dx, 0x3ce                                   ; graphics controller
    je .indexed
    mov dx, 0x3d4                                   ; CRTC
    cmp esi, 2
    je .indexed
    mov dx, 0x1ce                                   ; DISPI: index, then a 16-bit value
    shr eax, 8
    and eax, 0x0f
    out dx, ax
    inc dx
    RAND
    out dx, ax
    jmp op_done
.indexed:
    shr eax, 8
    out dx, al
    inc dx
    shr eax, 8
    out dx, al
    jmp op_done

; ---- ISA DMA channel 2 and the floppy controller ----
; A random address, count, page and mode for channel 2 (unmasked or not),
; a DOR value (now and then a reset), a rate or a DSR software reset, up to
; 15 random command bytes, then status and FIFO reads.
op_floppy:
    RAND
    mov esi, eax
    mov al, 0x06
    out 0x0a, al                                    ; mask channel 2
    out 0x0c, al                                    ; clear the flip-flop
    mov eax, esi
    out 0x04, al                                    ; address, low then high byte
    mov al, ah
    out 0x04, al
    out 0x0c, al
    shr eax, 16
    out 0x05, al                                    ; count, low then high byte
    mov al, ah
    out 0x05, al
    RAND
    mov esi, eax
    and al, 0xfc
    or al, 0x02
    out 0x0b, al                                    ; any mode, on channel 2
    mov al, ah
    out 0x81, al                                    ; page
    mov eax, esi
    shr eax, 16
    and al, 0x04
    or al, 0x02
    out 0x0a, al                                    ; unmasked half of the time
    RAND
    mov esi, eax
    mov dx, 0x3f2
    and al, 0xf3
    or al, 0x0c                                     ; DMA and IRQ on, out of reset
    test ah, 0x07
    jnz .dor
    and al, 0xfb                                    ; now and then into reset
.dor:
    out dx, al
    mov eax, esi
    shr eax, 16
    mov dx, 0x3f7                                   ; CCR: a data rate
    test ah, 0x10
    jz .rate
    mov dx, 0x3f4                                   ; DSR: a rate, or a software reset
.rate:
    and al, 0x83
    out dx, al
    RAND
    mov edi, eax
    and edi, 15
    mov dx, 0x3f5
.command:
    test edi, edi
    jz .results
    RAND
    out dx, al
    dec edi
    jmp .command
.results:
    mov edi, 12
.result:
    mov dx, 0x3f4
    in al, dx
    mov dx, 0x3f5
    in al, dx
    dec edi
    jnz .result
    mov dx, 0x3f7
    in al, dx
    jmp op_done

; ---- the other devices: one of sixteen, by bits 25-28 ----
op_devices:
    RAND
    mov esi, eax
    shr esi, 25
    and esi, 15
    jmp [0xf0000 + device_ops + esi * 4]

align 4
device_ops:
    dd 0xf0000 + op_pcnet, 0xf0000 + op_pcnet, 0xf0000 + op_pcnet, 0xf0000 + op_pcnet
    dd 0xf0000 + op_ne2k, 0xf0000 + op_ne2k, 0xf0000 + op_ne2k
    dd 0xf0000 + op_atapi, 0xf0000 + op_atapi
    dd 0xf0000 + op_fwcfg, 0xf0000 + op_fwcfg
    dd 0xf0000 + op_acpi, 0xf0000 + op_pctest, 0xf0000 + op_isa_dma
    dd 0xf0000 + op_lapic, 0xf0000 + op_ioapic

; NIC_BAR cfg, port: one time in 32 the BAR moves to a random port (never
; over 0xCF8, 0xF4 or the PM block) for this operation; else it is put back
; and I/O decode (and bus mastering) turned on.  EAX: a random number after.
%macro NIC_BAR 2
    RAND
    test al, 0x1f
    jnz %%home
    shr eax, 8
    and eax, 0xffe0
    cmp eax, 0xce0
    je op_done
    cmp eax, 0xe0
    je op_done
    cmp eax, PM_IO
    je op_done
    cmp eax, PM_IO + 0x20
    je op_done
    or eax, 1
    mov esi, eax
    CFG_WRITE32 %1, 0x10, esi
    jmp op_done
%%home:
    mov edi, eax
    CFG_WRITE32 %1, 0x10, %2 | 1
    CFG_WRITE32 %1, 0x04, 0x5
    mov eax, edi
%endmacro

; PCnet register access in 32-bit I/O mode (DWIO): RAP, then RDP or BDP.
%macro PC_CSR 2
    mov eax, %1
    mov dx, PCNET_IO + 0x14
    out dx, eax
    mov eax, %2
    mov dx, PCNET_IO + 0x10
    out dx, eax
%endmacro
%macro PC_BCR 2
    mov eax, %1
    mov dx, PCNET_IO + 0x14
    out dx, eax
    mov eax, %2
    mov dx, PCNET_IO + 0x1c
    out dx, eax
%endmacro

; FILL_RANDOM addr, bytes: random dwords (EDI counts).
%macro FILL_RANDOM 2
    mov edi, %2 / 4
%%next:
    RAND
    mov [%1 + edi * 4 - 4], eax
    dec edi
    jnz %%next
%endmacro

op_pcnet:
    NIC_BAR PCNET_CFG, PCNET_IO
    mov esi, eax
    shr esi, 8
    and esi, 7
    cmp esi, 3
    jb pcnet_regs
    je pcnet_init
    cmp esi, 6
    jb pcnet_transmit
    je pcnet_reset
    jmp pcnet_rx_ring

; Any register, either I/O mode's layout, any width, either direction.
pcnet_regs:
    RAND
    mov esi, eax
    and eax, 0x7f
    mov dx, PCNET_IO + 0x12                         ; RAP (16-bit I/O)
    test esi, 1 << 31
    jz .rap16
    mov dx, PCNET_IO + 0x14                         ; RAP (32-bit I/O)
    out dx, eax
    jmp .data
.rap16:
    out dx, ax
.data:
    RAND
    mov esi, eax
    mov dx, PCNET_IO + 0x10                         ; RDP
    test esi, 1 << 30
    jz .access
    mov dx, PCNET_IO + 0x16                         ; BDP, or with 32-bit I/O the reset port
    test esi, 1 << 27
    jz .access
    mov dx, PCNET_IO + 0x1c                         ; BDP (32-bit I/O)
.access:
    test esi, 1 << 29
    jz .read
    test esi, 1 << 28
    jz .write16
    out dx, eax                                     ; to RDP: switches to 32-bit I/O
    jmp op_done
.write16:
    out dx, ax
    jmp op_done
.read:
    in ax, dx
    test esi, 1 << 28
    jz op_done
    in eax, dx
    jmp op_done

; A software style (0-3), an initialisation block (random, or with the
; rings at PC_RX/PC_TX) at PC_IB or anywhere, then INIT and often STRT.
pcnet_init:
    mov dx, PCNET_IO + 0x12
    xor eax, eax
    out dx, ax                                      ; RAP 0 in 16-bit I/O
    mov dx, PCNET_IO + 0x10
    mov eax, 4
    out dx, eax                                     ; STOP; now 32-bit I/O for sure
    PC_CSR 0, 4
    RAND
    mov esi, eax
    and esi, 3
    PC_BCR 20, esi
    FILL_RANDOM PC_IB, 28
    RAND
    test eax, 3
    jz .block                                       ; a quarter: all random
    and dword [PC_IB], 0x00008000 | 0x30300000      ; promiscuous or not; 8 entries each (style 2)
    or dword [PC_IB], 0x30300000
    mov dword [PC_IB + 20], PC_RX
    mov dword [PC_IB + 24], PC_TX
    cmp esi, 0
    jne .block
    mov dword [PC_IB + 16], PC_RX | (3 << 29)       ; style 0: 24-bit address, 8 entries
    mov dword [PC_IB + 20], PC_TX | (3 << 29)
.block:
    RAND
    mov esi, eax
    test esi, 1 << 31
    jz .here
    and esi, 0xffff
    PC_CSR 1, esi                                   ; somewhere else, maybe past RAM
    RAND
    mov esi, eax
    and esi, 0xffff
    PC_CSR 2, esi
    jmp .go
.here:
    PC_CSR 1, PC_IB
    PC_CSR 2, 0
.go:
    RAND
    mov esi, eax
    and esi, 0x0f40                                 ; IENA and the write-one-to-clear bits at random
    or esi, 1                                       ; INIT
    PC_CSR 0, esi
    RAND
    test eax, 3
    jz op_done
    PC_CSR 0, 0x42                                  ; STRT, IENA
    jmp op_done

; Eight receive descriptors (style 2 layout): plausible buffers in RAM, or
; random addresses and byte counts; all owned by the card.
pcnet_rx_ring:
    FILL_RANDOM PC_RX, 128
    RAND
    test eax, 1
    jz .owned
    mov edi, PC_RX
    mov eax, PC_RXBUF
.plausible:
    mov [edi], eax
    mov dword [edi + 4], 0x8000f000 | (-1536 & 0xfff)
    add eax, 1536
    add edi, 16
    cmp edi, PC_RX + 128
    jb .plausible
.owned:
    mov edi, 16
.own:
    or dword [PC_RX + edi * 8 - 4], 0x80000000      ; OWN in either style's layout
    dec edi
    jnz .own
    PC_CSR 0, 0x42
    jmp op_done

; Eight transmit descriptors: the ARP request (plausible) or random frames
; at random addresses and lengths, STP/ENP at random; then TDMD.
pcnet_transmit:
    FILL_RANDOM PC_TX, 128
    RAND
    test eax, 1
    jz .random_frames
    mov esi, 0xf0000 + arp_request
    mov edi, PC_TXBUF
    mov edx, 60
.copy:
    mov al, [esi]
    mov [edi], al
    inc esi
    inc edi
    dec edx
    jnz .copy
    mov edi, PC_TX
.plausible:
    mov dword [edi], PC_TXBUF
    mov dword [edi + 4], 0x8300f000 | (-60 & 0xfff) ; OWN, STP, ENP
    mov dword [edi + 8], 0
    add edi, 16
    cmp edi, PC_TX + 128
    jb .plausible
    jmp .go
.random_frames:
    mov edi, 16
.own:
    or dword [PC_TX + edi * 8 - 4], 0x80000000
    dec edi
    jnz .own
.go:
    PC_CSR 0, 0x4a                                  ; TDMD, STRT, IENA
    jmp op_done

pcnet_reset:
    RAND
    mov dx, PCNET_IO + 0x14                         ; the reset port (16-bit I/O) or RAP (32-bit)
    test eax, 1
    jz .read
    mov dx, PCNET_IO + 0x18                         ; the reset port (32-bit I/O)
.read:
    in ax, dx
    jmp op_done

; An ARP request from 10.0.2.15 for 10.0.2.2 (slirp's gateway answers),
; padded to 60 bytes.
arp_request:
    db 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06
    db 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01
    db 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10, 0, 2, 15
    db 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 0, 2, 2
    times 18 db 0

; ---- NE2000 ----
op_ne2k:
    NIC_BAR NE2K_CFG, NE2K_IO
    mov esi, eax
    shr esi, 8
    and esi, 7
    cmp esi, 3
    jb ne2k_regs
    cmp esi, 5
    jb ne2k_remote_dma
    je ne2k_transmit
    cmp esi, 6
    je ne2k_ring
    jmp ne2k_arp

; Any page, any register, written or read; now and then the reset port.
ne2k_regs:
    RAND
    mov esi, eax
    mov dx, NE2K_IO
    out dx, al                                      ; CR: a page, a remote DMA command, start/stop/transmit
    mov edx, esi
    shr edx, 8
    and edx, 0x1f
    add edx, NE2K_IO
    shr esi, 16
    mov eax, esi
    test esi, 1 << 15
    jz .read
    out dx, al
    jmp op_done
.read:
    in al, dx
    jmp op_done

; A remote DMA of random address and count (often inside the card's 16 KiB),
; then up to 1023 data port accesses of one width.
ne2k_remote_dma:
    mov dx, NE2K_IO
    mov al, 0x22                                    ; page 0, started, no remote DMA
    out dx, al
    RAND
    mov esi, eax
    test esi, 1 << 31
    jz .any_address
    and eax, 0x3fff
    or eax, 0x4000
.any_address:
    mov dx, NE2K_IO + 0x08
    out dx, al
    inc dx
    mov al, ah
    out dx, al                                      ; RSAR
    RAND
    test eax, 1 << 31
    jz .any_count
    and eax, 0x7ff
.any_count:
    mov dx, NE2K_IO + 0x0a
    out dx, al
    inc dx
    mov al, ah
    out dx, al                                      ; RBCR
    RAND
    mov esi, eax
    mov dx, NE2K_IO + 0x0e
    and al, 0x49 | 0x01                             ; DCR: word or byte transfers
    out dx, al
    mov al, 0x0a                                    ; remote read
    test esi, 1 << 30
    jz .command
    mov al, 0x12                                    ; remote write
.command:
    mov dx, NE2K_IO
    out dx, al
    mov edi, esi
    shr edi, 8
    and edi, 0x3ff
    mov dx, NE2K_IO + 0x10
.data:
    test edi, edi
    jz op_done
    test esi, 1 << 30
    jz .in
    RAND
    test esi, 1 << 29
    jz .out8
    test esi, 1 << 28
    jz .out16
    out dx, eax
    jmp .next
.out16:
    out dx, ax
    jmp .next
.out8:
    out dx, al
    jmp .next
.in:
    test esi, 1 << 29
    jz .in8
    test esi, 1 << 28
    jz .in16
    in eax, dx
    jmp .next
.in16:
    in ax, dx
    jmp .next
.in8:
    in al, dx
.next:
    dec edi
    jmp .data

; A transmit from a random page with a random count.
ne2k_transmit:
    mov dx, NE2K_IO + 0x04
    out dx, al                                      ; TPSR
    shr eax, 8
    mov dx, NE2K_IO + 0x05
    out dx, al
    inc dx
    mov al, ah
    out dx, al                                      ; TBCR
    mov dx, NE2K_IO
    mov al, 0x26                                    ; start, transmit, abort remote DMA
    out dx, al
    jmp op_done

; The receive ring: random or plausible PSTART/PSTOP/BNRY/CURR, a receive
; mode, started.
ne2k_ring:
    mov esi, eax
    mov dx, NE2K_IO
    mov al, 0x21                                    ; page 0, stopped
    out dx, al
    test esi, 1 << 31
    jz .random
    mov dx, NE2K_IO + 0x01
    mov al, 0x46
    out dx, al                                      ; PSTART
    inc dx
    mov al, 0x80
    out dx, al                                      ; PSTOP
    inc dx
    mov al, 0x46
    out dx, al                                      ; BNRY
    mov dx, NE2K_IO
    mov al, 0x61                                    ; page 1
    out dx, al
    mov dx, NE2K_IO + 0x07
    mov al, 0x47
    out dx, al                                      ; CURR
    jmp .mode
.random:
    RAND
    mov dx, NE2K_IO + 0x01
    out dx, al
    inc dx
    mov al, ah
    out dx, al
    inc dx
    shr eax, 16
    out dx, al
    mov dx, NE2K_IO
    mov al, 0x61
    out dx, al
    mov dx, NE2K_IO + 0x07
    mov al, ah
    out dx, al
.mode:
    mov dx, NE2K_IO
    mov al, 0x22                                    ; page 0, started
    out dx, al
    RAND
    mov dx, NE2K_IO + 0x0c
    and al, 0x3f
    or al, 0x04                                     ; broadcasts at least: the ARP reply
    out dx, al                                      ; RCR
    mov dx, NE2K_IO + 0x0d
    xor al, al
    out dx, al                                      ; TCR: no loopback
    jmp op_done

; The ARP request through remote DMA into page 0x40, then transmitted.
ne2k_arp:
    mov dx, NE2K_IO
    mov al, 0x22
    out dx, al
    mov dx, NE2K_IO + 0x0e
    mov al, 0x49                                    ; word transfers
    out dx, al
    mov dx, NE2K_IO + 0x08
    xor al, al
    out dx, al
    inc dx
    mov al, 0x40
    out dx, al                                      ; RSAR 0x4000
    inc dx
    mov al, 60
    out dx, al
    inc dx
    xor al, al
    out dx, al                                      ; RBCR 60
    mov dx, NE2K_IO
    mov al, 0x12
    out dx, al
    mov esi, 0xf0000 + arp_request
    mov edi, 30
    mov dx, NE2K_IO + 0x10
.word:
    mov ax, [esi]
    out dx, ax
    add esi, 2
    dec edi
    jnz .word
    mov dx, NE2K_IO + 0x04
    mov al, 0x40
    out dx, al                                      ; TPSR
    inc dx
    mov al, 60
    out dx, al
    inc dx
    xor al, al
    out dx, al                                      ; TBCR 60
    mov dx, NE2K_IO
    mov al, 0x26
    out dx, al
    jmp op_done

; ---- ATAPI on the secondary channel ----
op_atapi:
    mov dx, 0x176
    and al, 0x10
    or al, 0xa0
    out dx, al                                      ; master or slave
    RAND
    mov dx, 0x171
    out dx, al                                      ; features: DMA or not
    shr eax, 8
    mov dx, 0x174
    out dx, al
    inc dx
    mov al, ah
    out dx, al                                      ; byte count limit
    RAND
    mov esi, eax
    mov dx, 0x177
    test esi, 0x7
    jnz .packet
    shr eax, 8
    out dx, al                                      ; any command
    jmp .data
.packet:
    mov al, 0xa0
    out dx, al                                      ; PACKET
    mov edi, esi
    shr edi, 4
    and edi, 15
    mov dx, 0x170
    RAND
    mov al, [0xf0000 + atapi_commands + edi]
    out dx, ax                                      ; the command and a random byte
    mov edi, 5
.packet_word:
    RAND
    test esi, 1 << 30
    jz .random_word
    and eax, 0x0f0f                                 ; small LBAs and lengths
.random_word:
    out dx, ax
    dec edi
    jnz .packet_word
.data:
    RAND
    mov esi, eax
    mov edi, eax
    and edi, 0x3ff
    mov dx, 0x170
.pio:
    test edi, edi
    jz .dma
    test esi, 1 << 31
    jz .in
    out dx, ax
    jmp .pio_next
.in:
    in ax, dx
.pio_next:
    dec edi
    jmp .pio
.dma:
    test ebp, ebp
    jz .status
    RAND
    mov [PRD2], eax
    RAND
    test eax, 1 << 30
    jz .any_length
    and eax, 0x8000ffff
.any_length:
    mov [PRD2 + 4], eax
    lea edx, [ebp + 0x0c]
    mov eax, PRD2
    out dx, eax
    lea edx, [ebp + 0x08]
    RAND
    and al, 0x08
    or al, 0x01
    out dx, al                                      ; start, either direction
    add edx, 2
    in al, dx
    out dx, al                                      ; clear interrupt/error
    sub edx, 2
    xor eax, eax
    out dx, al                                      ; stop
.status:
    mov dx, 0x376
    in al, dx
    mov dx, 0x177
    in al, dx
    RAND
    test eax, 0x3f
    jnz op_done
    mov dx, 0x376
    mov al, 0x04                                    ; now and then a software reset
    out dx, al
    xor al, al
    out dx, al
    jmp op_done

atapi_commands:
    db 0x00, 0x03, 0x12, 0x1b, 0x1e, 0x25, 0x28, 0xa8
    db 0x43, 0x46, 0x4a, 0x5a, 0xbe, 0xbd, 0x51, 0xff

; ---- fw_cfg: a selector and data, or a DMA descriptor ----
op_fwcfg:
    mov esi, eax
    test esi, 1 << 31
    jnz .dma
    and eax, 0x3f                                   ; the keys that exist, mostly
    test esi, 1 << 30
    jz .select
    mov eax, esi
    shr eax, 8                                      ; any key, writable ones too
.select:
    mov dx, 0x510
    out dx, ax
    mov edi, esi
    shr edi, 16
    and edi, 0x1ff
    mov dx, 0x511
.data:
    test edi, edi
    jz op_done
    test esi, 1 << 29
    jz .read
    out dx, al
    jmp .next
.read:
    in al, dx
.next:
    dec edi
    jmp .data
.dma:
    RAND
    test eax, 1 << 31
    jz .any_control
    and eax, 0x003f0000 | 0x1e                      ; a key and select/skip/read/write
    or eax, 0x08
.any_control:
    bswap eax
    mov [FWD], eax
    RAND
    test eax, 1 << 31
    jz .any_length
    and eax, 0x1fff
.any_length:
    bswap eax
    mov [FWD + 4], eax
    RAND
    mov dword [FWD + 8], 0
    test eax, 1 << 31
    jz .any_address
    and eax, 0xfffff
.any_address:
    bswap eax
    mov [FWD + 12], eax
    RAND
    test eax, 0x7
    jnz .high_zero
    mov [FWD + 8], eax                              ; above 4 GiB
.high_zero:
    RAND
    mov esi, eax
    xor eax, eax
    test esi, 0xf
    jnz .high
    mov eax, esi                                    ; the descriptor itself above 4 GiB
.high:
    mov dx, 0x514
    out dx, eax
    mov eax, FWD
    test esi, 1 << 30
    jz .address
    mov eax, esi                                    ; or anywhere
.address:
    bswap eax
    mov dx, 0x518
    out dx, eax
    jmp op_done

; ---- the ACPI PM block: any register, any width; SLP_EN stays clear ----
op_acpi:
    mov esi, eax
    CFG_WRITE32 PM_CFG, 0x40, PM_IO | 1
    mov edx, esi
    and edx, 0x3f
    add edx, PM_IO
    RAND
    and eax, 0xdfdfdfdf                             ; bit 5 of every byte: SLP_EN whatever the alignment
    test esi, 1 << 31
    jz .read
    test esi, 1 << 30
    jz .write8
    test esi, 1 << 29
    jz .write16
    out dx, eax
    jmp op_done
.write16:
    out dx, ax
    jmp op_done
.write8:
    out dx, al
    jmp op_done
.read:
    in eax, dx
    in ax, dx
    in al, dx
    jmp op_done

; ---- pc-testdev: its ports, its IRQ lines, its I/O memory ----
op_pctest:
    mov esi, eax
    RAND
    test esi, 1 << 31
    jz .memory
    mov edx, esi
    and edx, 0x7
    add edx, 0xe0
    test esi, 1 << 30
    jz .port
    mov edx, esi
    and edx, 0x1f
    add edx, 0x2000                                 ; an IRQ line: raised or lowered
.port:
    test esi, 1 << 29
    jz .read
    out dx, al
    test esi, 1 << 28
    jz op_done
    out dx, eax
    jmp op_done
.read:
    in al, dx
    in eax, dx
    jmp op_done
.memory:
    mov edi, esi
    and edi, 0xfffc
    add edi, 0xff000000
    test esi, 1 << 30
    jz .load
    mov [edi], eax
    jmp op_done
.load:
    mov eax, [edi]
    jmp op_done

; ---- every ISA DMA channel's registers (both controllers, the page registers) ----
op_isa_dma:
    mov esi, eax
    mov edx, esi
    and edx, 0x0f                                   ; 8237 #1
    test esi, 1 << 31
    jz .port
    mov edx, esi
    and edx, 0x1f
    add edx, 0xc0                                   ; 8237 #2
    test esi, 1 << 30
    jz .port
    mov edx, esi
    and edx, 0x0f
    add edx, 0x80                                   ; page registers
.port:
    RAND
    test esi, 1 << 29
    jz .read
    out dx, al
    jmp op_done
.read:
    in al, dx
    jmp op_done

; ---- the local APIC: any register, random values ----
; Any delivery mode: an NMI it sends reaches rom_nmi (see rom_idt).
op_lapic:
    mov esi, eax
    mov edi, esi
    and edi, 0x3f0
    add edi, 0xfee00000
    RAND
    test esi, 1 << 31
    jz .load
    mov [edi], eax
    jmp op_done
.load:
    mov eax, [edi]
    jmp op_done

; ---- the I/O APIC: IOREGSEL, then IOWIN read or written ----
op_ioapic:
    mov esi, eax
    and eax, 0x3f
    test esi, 1 << 31
    jz .select
    shr eax, 8                                      ; any index
.select:
    mov [0xfec00000], eax
    RAND
    test esi, 1 << 30
    jz .read
    mov [0xfec00010], eax
    jmp op_done
.read:
    mov eax, [0xfec00010]
    jmp op_done

op_done:
    dec ecx
    jnz next_op
    FLAT32_PASS_OR_BAD

; ---- the ROM's own IDT ----
; Random APIC writes (op_lapic, op_ioapic, stores in op_memory) may send
; this CPU an NMI, as they may on real hardware.  Through an IDT in RAM, which
; DMA scribbles over, that ended in a triple fault and a reset that started
; the operations over until the instruction budget ran out.  The NMI handler
; returns at once (no register is touched); any exception ends the run with
; status 37, which tests/e2e/hostile.sh reports as such.
rom_nmi:
    iret

rom_exception:
    mov al, 0x12
    out 0xf4, al
    cli
    hlt

%macro IDT_GATE 1
    dw (0xf0000 + %1 - $$) & 0xffff
    dw 0x08                                         ; flat code
    dw 0x8e00                                       ; present, DPL 0, 32-bit interrupt gate
    dw (0xf0000 + %1 - $$) >> 16
%endmacro

align 8
rom_idt:
%assign vec 0
%rep 32
%if vec == 2
    IDT_GATE rom_nmi
%else
    IDT_GATE rom_exception
%endif
%assign vec vec + 1
%endrep
rom_idt_ptr:
    dw rom_idt_ptr - rom_idt - 1
    dd 0xf0000 + rom_idt

FLAT32_ROM_END
