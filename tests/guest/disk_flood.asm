; A BIOS-replacement ROM for tests/e2e/snapshot_rss.sh (issue 26 #2): it
; writes MIB mebibytes (nasm -DMIB=N, a multiple of 32) to the primary
; master through bus-master DMA, 32 MiB per WRITE DMA EXT command (65536
; sectors, a descriptor table of 512 64 KiB entries all over one buffer),
; then leaves through isa-debug-exit with 0x10 (exit status 33), or with
; 0x11 (35) when a command ends in an error.
%include "tests/guest/flat32_rom.inc"

%ifndef MIB
%define MIB 256
%endif
IDE_CFG  equ 0x80000900         ; 00:01.1
BM       equ 0xc000             ; its bus-master registers
PRD      equ 0x10000            ; the descriptor table
BUF      equ 0x20000            ; 64 KiB written again and again

FLAT32_ROM_START
    mov eax, IDE_CFG + 0x20
    mov dx, 0xcf8
    out dx, eax
    mov eax, BM | 1
    mov dx, 0xcfc
    out dx, eax
    mov eax, IDE_CFG + 0x04
    mov dx, 0xcf8
    out dx, eax
    mov eax, 0x5                                    ; I/O decode, bus master
    mov dx, 0xcfc
    out dx, eax

    mov edi, BUF                                    ; the data: not zeros
    mov ecx, 0x10000 / 4
    mov eax, 0x5a5aa5a5
    rep stosd
    mov edi, PRD
    mov ecx, 512
.entry:
    mov dword [edi], BUF
    mov dword [edi + 4], 0                          ; 0: 64 KiB
    add edi, 8
    loop .entry
    or dword [edi - 4], 0x80000000                  ; the last one

    xor ebx, ebx                                    ; the command number: LBA = EBX * 65536
.command:
    mov dx, BM
    xor al, al
    out dx, al                                      ; engine stopped
    mov dx, BM + 2
    mov al, 0x06
    out dx, al                                      ; interrupt and error cleared
    mov dx, BM + 4
    mov eax, PRD
    out dx, eax
    mov dx, 0x1f6
    mov al, 0x40                                    ; LBA, master
    out dx, al
    mov dx, 0x1f2
    xor al, al
    out dx, al                                      ; count 15:8 ...
    out dx, al                                      ; ... and 7:0: 0 is 65536 sectors
    mov eax, ebx                                    ; LBA = EBX << 16
    mov dx, 0x1f3
    shr eax, 16
    out dx, al                                      ; LBA 31:24 (bits 8-15 of EBX)
    xor al, al
    out dx, al                                      ; LBA 7:0
    mov dx, 0x1f4
    out dx, al                                      ; LBA 39:32
    out dx, al                                      ; LBA 15:8
    mov dx, 0x1f5
    out dx, al                                      ; LBA 47:40
    mov al, bl
    out dx, al                                      ; LBA 23:16
    mov dx, 0x1f7
    mov al, 0x35                                    ; WRITE DMA EXT
    out dx, al
    mov dx, BM
    mov al, 0x01                                    ; start, memory to disk
    out dx, al
.wait:
    mov dx, 0x1f7
    in al, dx
    test al, 0x80                                   ; BSY
    jnz .wait
    test al, 0x08                                   ; DRQ: still transferring
    jnz .wait
    test al, 0x01                                   ; ERR
    jnz .bad
    mov dx, BM
    xor al, al
    out dx, al
    inc ebx
    cmp ebx, MIB / 32
    jb .command
    FLAT32_PASS_OR_BAD

FLAT32_ROM_END
