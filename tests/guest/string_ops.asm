; A 64 KiB BIOS-replacement ROM for tests/e2e/strings.sh: in flat 32-bit
; protected mode it runs REP MOVS/STOS over page boundaries, with overlapping
; source and destination and unaligned addresses, then prints a checksum of
; the memory it wrote to the debug console (port 0xE9) as 8 hex digits and a
; newline, and leaves through isa-debug-exit.  The test computes the same
; checksum on the host by simulating the x86 semantics element by element.
%include "tests/guest/flat32_rom.inc"

FLAT32_ROM_START
    cld
    ; pattern: byte i of 0x20000..0x22FFF = (i * 7 + 3) & 0xff
    mov edi, 0x20000
    xor ecx, ecx
.fill:
    lea eax, [ecx * 8]
    sub eax, ecx
    add eax, 3
    mov [edi + ecx], al
    inc ecx
    cmp ecx, 0x3000
    jb .fill
    ; 1. plain copy across pages: 1500 dwords from 0x20ffd to 0x30ffe
    mov esi, 0x20ffd
    mov edi, 0x30ffe
    mov ecx, 1500
    rep movsd
    ; 2. overlapping forward copy: dwords from 0x30ffe to 0x31001 (dst = src + 3)
    mov esi, 0x30ffe
    mov edi, 0x31001
    mov ecx, 1200
    rep movsd
    ; 3. overlapping bytes (dst = src + 1) and words (dst = src + 2)
    mov esi, 0x20100
    mov edi, 0x20101
    mov ecx, 300
    rep movsb
    mov esi, 0x21ff0
    mov edi, 0x21ff2
    mov ecx, 700
    rep movsw
    ; 4. stores: unaligned words, bytes and dwords across a page
    mov edi, 0x40ff1
    mov eax, 0x1234beef
    mov ecx, 3000
    rep stosw
    mov edi, 0x42ffe
    mov al, 0x5a
    mov ecx, 9
    rep stosb
    mov edi, 0x43ff9
    mov eax, 0xcafef00d
    mov ecx, 5
    rep stosd
    ; checksum s = s * 31 + byte over 0x20000..0x22fff, 0x30000..0x32fff, 0x40000..0x44fff
    xor edx, edx
    mov esi, 0x20000
    mov ecx, 0x3000
    call sum
    mov esi, 0x30000
    mov ecx, 0x3000
    call sum
    mov esi, 0x40000
    mov ecx, 0x5000
    call sum
    ; print edx as 8 hex digits
    mov ecx, 8
.hex:
    rol edx, 4
    mov eax, edx
    and eax, 15
    mov al, [0xf0000 + hexdigits + eax]
    out 0xe9, al
    loop .hex
    mov al, 10
    out 0xe9, al
    mov al, 0x10
    out 0xf4, al
    cli
    hlt

sum:
    movzx eax, byte [esi]
    imul edx, edx, 31
    add edx, eax
    inc esi
    dec ecx
    jnz sum
    ret

hexdigits: db "0123456789abcdef"

FLAT32_ROM_END
