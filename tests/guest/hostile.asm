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
;     controller (tests/e2e/hostile.sh gives it a disk in A:), with resets.
;
; The ROM keeps all of its state in registers and uses no stack and no RAM
; that it needs (the descriptor table is rewritten before each use): DMA and
; stray stores may overwrite any RAM.  It runs with interrupts disabled.
; What it must not do, because the run would end or the fuzzer would lose
; itself rather than the monitor being tested: write 0x64 (keyboard
; controller commands: reset, A20), 0x92 (fast reset, A20), 0xCF9 (reset)
; or 0xF4-0xF7 (debug exit); reach configuration space other than through
; its own accesses (0xCF8-0xCFF); change the i440FX (PAM could unmap this
; ROM); put the bus-master BAR over 0xCF8 or 0xF4.
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

next_op:
    RAND
    mov esi, eax
    shr esi, 29                                     ; eight kinds of operation
    cmp esi, 2
    jb op_port
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

op_done:
    dec ecx
    jnz next_op
    FLAT32_PASS_OR_BAD

FLAT32_ROM_END
