; A 64 KiB BIOS-replacement ROM for `make bench`: from the reset vector it
; enters flat 32-bit protected mode and runs a tight integer loop (a mix of
; ALU, load/store and a conditional branch — 8 instructions per iteration),
; then leaves through the isa-debug-exit port (exit status 33).
; ITERATIONS can be overridden with nasm -DITERATIONS=N.
%ifndef ITERATIONS
%define ITERATIONS 25000000
%endif
%include "tests/guest/flat32_rom.inc"

FLAT32_ROM_START
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

FLAT32_ROM_END
