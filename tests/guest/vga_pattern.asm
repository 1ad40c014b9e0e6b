; A boot sector that draws a known pattern through the VGA BIOS, for the
; display tests (tests/e2e/ui.sh computes the same pattern and compares it
; with screendumps and with what VNC/SDL show, pixel for pixel).
;
;   nasm -f bin -DMODE13 vga_pattern.asm   int 10h AX=0013h (320x200x256), the
;        DAC programmed with colour i = (i >> 2, i & 63, 63 - (i >> 2)) (6-bit),
;        pixel (x, y) = ((x + 3y) ^ (x >> 6)) & 0xff at A000:y*320+x
;   nasm -f bin -DVBE vga_pattern.asm      the VBE mode list (4F00h/4F01h)
;        searched for 640x480x32 with a linear framebuffer, set with 4F02h
;        (bit 14: LFB), then in flat 32-bit protected mode pixel (x, y) =
;        (x >> 2) << 16 | (y >> 1) << 8 | ((x ^ y) & 0xff) at
;        PhysBasePtr + y * BytesPerScanLine + 4x
;   nasm -f bin -DKEYS vga_pattern.asm     no drawing: prints "READY\nKEYS " on
;        port 0xE9, then echoes every character int 16h returns there until
;        a 'q', then "\n" and the isa-debug-exit below (for keyboard input
;        through the display front ends)
;
; Then "DONE\n" goes to the debug console (port 0xE9) and the guest leaves
; through isa-debug-exit with value 0x10 (exit status 33); with -DSTAY it
; masks the PICs and halts for good instead, so the screen stays up until
; -run-for ends.  Failures print a reason on port 0xE9 and exit with value 1
; (status 3).
; The end of both tests: leave through isa-debug-exit, or with -DSTAY mask
; the PICs and halt for good (STI only lets HLT wait; nothing is unmasked).
%macro FINISH 0
%ifdef STAY
    cli
    mov al, 0xff
    out 0x21, al
    out 0xa1, al
    sti
%%halt:
    hlt
    jmp %%halt
%else
    mov al, 0x10
    out 0xf4, al
    jmp $
%endif
%endmacro

bits 16
org 0x7c00

VBE_INFO  equ 0x8000               ; VbeInfoBlock (512 bytes)
MODE_INFO equ 0x8200               ; ModeInfoBlock (256 bytes)

start:
    cli
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7c00
    cld
    sti

%ifdef MODE13
    mov ax, 0x0013
    int 0x10
    ; DAC: colour i = (i >> 2, i & 63, 63 - (i >> 2))
    mov dx, 0x3c8
    xor al, al
    out dx, al
    inc dx
    xor cx, cx
.pal:
    mov al, cl
    shr al, 2
    out dx, al
    mov al, cl
    and al, 63
    out dx, al
    mov al, cl
    shr al, 2
    xor al, 63
    out dx, al
    inc cx
    cmp cx, 256
    jb .pal
    ; pixels
    mov ax, 0xa000
    mov es, ax
    xor di, di
    xor dx, dx                    ; y
.row:
    xor cx, cx                    ; x
.col:
    mov ax, dx
    add ax, dx
    add ax, dx                    ; 3y
    add ax, cx                    ; x + 3y
    mov bx, cx
    shr bx, 6
    xor ax, bx
    stosb
    inc cx
    cmp cx, 320
    jb .col
    inc dx
    cmp dx, 200
    jb .row
    jmp done
%elifdef VBE
    mov di, VBE_INFO
    mov dword [di], 'VBE2'
    mov ax, 0x4f00
    int 0x10
    cmp ax, 0x004f
    jne no_vbe
    lfs si, [VBE_INFO + 14]       ; VideoModePtr
.next_mode:
    mov cx, [fs:si]
    add si, 2
    cmp cx, 0xffff
    je no_mode
    mov di, MODE_INFO
    mov ax, 0x4f01
    int 0x10
    cmp ax, 0x004f
    jne .next_mode
    test byte [MODE_INFO + 0], 0x80      ; linear framebuffer available
    jz .next_mode
    cmp word [MODE_INFO + 18], 640
    jne .next_mode
    cmp word [MODE_INFO + 20], 480
    jne .next_mode
    cmp byte [MODE_INFO + 25], 32
    jne .next_mode
    mov bx, cx
    or bx, 0x4000                 ; use the LFB
    mov ax, 0x4f02
    int 0x10
    cmp ax, 0x004f
    jne no_mode

    ; flat 32-bit protected mode to reach the LFB
    cli
    lgdt [gdtr]
    mov eax, cr0
    or al, 1
    mov cr0, eax
    jmp 0x08:pm32

bits 32
pm32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x7c00
    mov ebp, [MODE_INFO + 40]     ; PhysBasePtr
    movzx esi, word [MODE_INFO + 16]   ; BytesPerScanLine
    xor edx, edx                  ; y
.row:
    mov edi, ebp
    xor ecx, ecx                  ; x
.col:
    mov eax, ecx
    shr eax, 2
    shl eax, 16                   ; R = x >> 2
    mov ebx, edx
    shr ebx, 1
    shl ebx, 8                    ; G = y >> 1
    or eax, ebx
    mov ebx, ecx
    xor ebx, edx
    and ebx, 0xff                 ; B = (x ^ y) & 0xff
    or eax, ebx
    stosd
    inc ecx
    cmp ecx, 640
    jb .col
    add ebp, esi
    inc edx
    cmp edx, 480
    jb .row
    mov esi, msg_done
    call puts32
    FINISH

puts32:
    lodsb
    test al, al
    jz .end
    out 0xe9, al
    jmp puts32
.end:
    ret

bits 16
no_vbe:
    mov si, msg_novbe
    jmp fail
no_mode:
    mov si, msg_nomode
    jmp fail

align 8
gdt:
    dq 0
    dq 0x00cf9a000000ffff         ; 0x08: flat 32-bit code
    dq 0x00cf92000000ffff         ; 0x10: flat data
gdtr:
    dw gdtr - gdt - 1
    dd gdt
msg_novbe:  db "VBE 4F00h failed", 10, 0
msg_nomode: db "no 640x480x32 LFB mode", 10, 0
%elifdef KEYS
    mov si, msg_ready
    call puts
.key:
    xor ah, ah
    int 0x16
    out 0xe9, al
    cmp al, 'q'
    jne .key
    mov al, 10
    out 0xe9, al
    mov al, 0x10
    out 0xf4, al
    jmp $
msg_ready: db "READY", 10, "KEYS ", 0
%else
%error "assemble with -DMODE13, -DVBE or -DKEYS"
%endif

done:
    mov si, msg_done
    call puts
    FINISH

fail:
    call puts
    mov al, 1
    out 0xf4, al
    jmp $

puts:
    lodsb
    test al, al
    jz .end
    out 0xe9, al
    jmp puts
.end:
    ret

msg_done: db "DONE", 10, 0

    times 510 - ($ - $$) db 0
    dw 0xaa55
