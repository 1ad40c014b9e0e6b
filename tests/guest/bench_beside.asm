; A 64 KiB BIOS-replacement ROM for `make bench`: guest code that keeps its
; data in the page it runs from, as decompressors, DOS programs and games do.
; It copies a payload to RAM at 0x20000 and runs it there (ROM is not
; writable), then leaves through the isa-debug-exit port (exit status 33).
;
;   -DWORKLOAD=1  a tight loop whose data lives 64 bytes past its last byte:
;                 5 instructions per iteration, ITERATIONS times
;   -DWORKLOAD=2  an LZ77 decoder that unpacks a stream (tests/guest/lz.py
;                 made it, -DLZ_FILE=...) into the bytes right after its own
;                 code, ROUNDS times: every output byte lands in a page
;                 that holds code
%ifndef ITERATIONS
%define ITERATIONS 20000000
%endif
%ifndef ROUNDS
%define ROUNDS 100
%endif
%include "tests/guest/flat32_rom.inc"

RUN_AT equ 0x20000

FLAT32_ROM_START
    mov esi, 0xf0000 + payload
    mov edi, RUN_AT
    mov ecx, payload_end - payload
    cld
    rep movsb
    mov eax, RUN_AT
    jmp eax                         ; (a relative jump would be from the ROM's link address)

payload:
%if WORKLOAD == 1
    mov ecx, ITERATIONS
    xor eax, eax
    xor ebx, ebx
.loop:
    add eax, ecx
    mov [RUN_AT + (.data - payload)], eax
    add ebx, [RUN_AT + (.data - payload)]
    dec ecx
    jnz .loop
    mov al, 0x10
    out 0xf4, al
    cli
    hlt
.code_end:
    times 64 db 0x90                ; 64 bytes past the code's last byte
.data:
    dd 0
%else
    ; Stream: a token byte T.  T < 0x80: T+1 literal bytes follow.
    ; T >= 0x80: copy (T & 0x7f) + 3 bytes from `distance` (next 2 bytes,
    ; little-endian) back in the output.  A zero-length stream ends it.
    mov ebp, ROUNDS
.round:
    mov esi, 0xf0000 + stream
    mov edi, RUN_AT + (.out - payload)
.token:
    cmp esi, 0xf0000 + stream_end
    jae .done
    movzx ecx, byte [esi]
    inc esi
    test cl, 0x80
    jnz .match
    inc ecx
    rep movsb                       ; literals, from ROM
    jmp .token
.match:
    and ecx, 0x7f
    add ecx, 3
    movzx eax, word [esi]
    add esi, 2
    push esi
    mov esi, edi
    sub esi, eax
    rep movsb                       ; byte by byte: an overlapping copy repeats
    pop esi
    jmp .token
.done:
    dec ebp
    jnz .round
    mov al, 0x10
    out 0xf4, al
    cli
    hlt
.out:                               ; the output starts beside the code
%endif
payload_end:

%if WORKLOAD == 2
stream:
    incbin LZ_FILE
stream_end:
%endif

FLAT32_ROM_END
