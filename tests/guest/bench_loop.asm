; A 64 KiB BIOS-replacement ROM for `make bench`: from the reset vector it
; enters flat 32-bit protected mode and runs a tight integer loop (a mix of
; ALU, load/store and a conditional branch — 8 instructions per iteration),
; then leaves through the isa-debug-exit port (exit status 33).
; ITERATIONS can be overridden with nasm -DITERATIONS=N.
%ifndef ITERATIONS
%define ITERATIONS 25000000
%endif
bits 16
org 0

start16:
    cli
    xor ax, ax
    mov ds, ax
    o32 lgdt [cs:gdt_ptr]
    mov eax, cr0
    or al, 1
    mov cr0, eax
    jmp dword 0x08:(0xf0000 + start32)

bits 32
start32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x90000
    mov ecx, ITERATIONS
    mov edi, 0x10000
    xor eax, eax
    xor ebx, ebx
.loop:
    add eax, ecx
    xor ebx, eax
    mov [edi], ebx
    add edx, [edi]
    shr ebx, 1
    lea esi, [eax + ebx * 2]
    dec ecx
    jnz .loop
    mov al, 0x10
    out 0xf4, al
    cli
    hlt

align 8
gdt:
    dq 0
    dq 0x00cf9b000000ffff      ; 0x08 flat code
    dq 0x00cf93000000ffff      ; 0x10 flat data
gdt_ptr:
    dw gdt_ptr - gdt - 1
    dd 0xf0000 + gdt

    times 0xfff0 - ($ - $$) db 0
bits 16
reset_vector:                  ; physical 0xFFFFFFF0, CS base 0xFFFF0000
    jmp 0xf000:start16
    times 0x10000 - ($ - $$) db 0
