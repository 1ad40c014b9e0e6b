; A tiny Multiboot v1 kernel (a.out-kludge header, so it needs no linker).
; It reports what the loader handed it on COM1 — magic, memory sizes, the
; memory map, the command line and modules — then leaves through the
; isa-debug-exit port with value 0x10 (process exit status 33).
%include "tests/guest/multiboot.inc"

COM1      equ 0x3f8

MULTIBOOT_HEADER 0x3                ; page-aligned modules, memory information

start:
    mov esp, stack_top
    mov ebp, ebx                  ; keep the information structure
    cmp eax, 0x2BADB002
    jne bad_magic
    mov esi, msg_magic
    call puts
    mov esi, msg_mbi              ; where the loader put the information structure
    call puts
    mov eax, ebp
    call put_hex
    mov esi, msg_kernel_end
    call puts
    mov eax, bss_end
    call put_hex
    call newline

    mov esi, msg_lower
    call puts
    mov eax, [ebp + 4]
    call put_dec
    mov esi, msg_upper
    call puts
    mov eax, [ebp + 8]
    call put_dec
    call newline

    test dword [ebp], 1 << 2      ; command line present?
    jz .no_cmdline
    mov esi, msg_cmdline
    call puts
    mov esi, [ebp + 16]
    call puts
    call newline
.no_cmdline:

    test dword [ebp], 1 << 3      ; modules present?
    jz .no_mods
    mov ecx, [ebp + 20]
    mov ebx, [ebp + 24]
.mod_loop:
    jecxz .no_mods
    mov esi, msg_module
    call puts
    mov eax, [ebx]
    call put_hex
    mov al, ' '
    call putc
    mov eax, [ebx + 4]
    call put_hex
    mov al, ' '
    call putc
    mov esi, [ebx + 8]
    call puts
    mov al, ' '
    call putc
    mov esi, [ebx]                ; first bytes of the module's contents
    mov edx, [ebx + 4]
    sub edx, esi
    call put_bytes
    call newline
    add ebx, 16
    dec ecx
    jmp .mod_loop
.no_mods:

    test dword [ebp], 1 << 6      ; memory map present?
    jz done
    mov ebx, [ebp + 48]           ; mmap_addr
    mov edi, ebx
    add edi, [ebp + 44]           ; end = addr + mmap_length
.mmap_loop:
    cmp ebx, edi
    jae done
    mov esi, msg_mmap_base
    call puts
    mov eax, [ebx + 8]
    call put_hex
    mov eax, [ebx + 4]
    call put_hex
    mov esi, msg_mmap_len
    call puts
    mov eax, [ebx + 16]
    call put_hex
    mov eax, [ebx + 12]
    call put_hex
    mov esi, msg_mmap_type
    call puts
    mov eax, [ebx + 20]
    call put_dec
    call newline
    add ebx, [ebx]
    add ebx, 4
    jmp .mmap_loop

done:
    mov esi, msg_done
    call puts
    mov al, 0x10
    out 0xf4, al
    cli
    hlt

bad_magic:
    mov esi, msg_bad
    call puts
    mov al, 0x01
    out 0xf4, al
    cli
    hlt

; putc: AL to COM1 once the transmitter holding register is empty
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

newline:
    mov al, 10
    jmp putc

; puts: zero-terminated string at ESI
puts:
    push esi
.next:
    lodsb
    test al, al
    jz .end
    call putc
    jmp .next
.end:
    pop esi
    ret

; put_hex: EAX as 8 hex digits
put_hex:
    push ecx
    push eax
    mov ecx, 8
.digit:
    rol eax, 4
    push eax
    and al, 0x0f
    add al, '0'
    cmp al, '9'
    jbe .out
    add al, 'a' - '0' - 10
.out:
    call putc
    pop eax
    loop .digit
    pop eax
    pop ecx
    ret

; put_dec: EAX in decimal
put_dec:
    push eax
    push ecx
    push edx
    push ebx
    mov ebx, 10
    xor ecx, ecx
.div:
    xor edx, edx
    div ebx
    push edx
    inc ecx
    test eax, eax
    jnz .div
.emit:
    pop eax
    add al, '0'
    call putc
    loop .emit
    pop ebx
    pop edx
    pop ecx
    pop eax
    ret

; put_bytes: up to 16 printable bytes at ESI (EDX = available)
put_bytes:
    push ecx
    mov ecx, 16
.b:
    test edx, edx
    jz .e
    lodsb
    cmp al, 10
    je .e
    call putc
    dec edx
    loop .b
.e:
    pop ecx
    ret

msg_magic:     db "multiboot magic ok", 10, 0
msg_mbi:       db "mbi=", 0
msg_kernel_end: db " kernel_end=", 0
msg_bad:       db "bad multiboot magic", 10, 0
msg_lower:     db "mem_lower=", 0
msg_upper:     db " mem_upper=", 0
msg_cmdline:   db "cmdline=", 0
msg_module:    db "module ", 0
msg_mmap_base: db "mmap base=0x", 0
msg_mmap_len:  db " len=0x", 0
msg_mmap_type: db " type=", 0
msg_done:      db "done", 10, 0

MULTIBOOT_BSS
MULTIBOOT_END
