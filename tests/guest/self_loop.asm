; A 64 KiB BIOS-replacement ROM for tests/e2e/bt.sh: a loop that is one
; block jumping to its own start, with memory operands, ADC, a rotate and a
; shift, whose first instruction writes every flag.  bt keeps the flags in
; the host across the jump back and skips the block's entry check of EDI
; (the loop never writes EDI); the budget ends translated runs at the jump
; back many times, and the PIT's IRQ0 comes in there.  The handler checks
; the EFLAGS it interrupted at the loop's top against ECX (DEC's OF SF ZF
; PF are those of TEST ECX, ECX then) and counts mismatches.
; After the loop the debug console (port 0x402) gets the registers and
; EFLAGS, one hex line each (eax ebx ecx edx esi edi eflags: bt.sh compares
; them between the engines), then the number of checks made; exit status 33
; through isa-debug-exit when no check failed, 35 when one did.
%include "tests/guest/flat32_rom.inc"
%include "tests/guest/irq0_1khz.inc"

CHECKED equ 0x2000              ; interrupts taken at the loop's top
BAD     equ 0x2004              ; ... whose EFLAGS did not match ECX

FLAT32_ROM_START
    mov dword [CHECKED], 0
    mov dword [BAD], 0
    IRQ0_1KHZ_START timer_irq

    mov ecx, 3000000
    mov edi, 0x10000
    mov dword [edi + 4], 0x9e3779b9
    xor eax, eax
    xor ebx, ebx
    xor edx, edx
    xor esi, esi
    sti
    jmp loop_top                ; (bt decodes on here; JNZ below starts the loop's own block)
loop_top:
    add eax, ecx
    xor ebx, eax
    mov [edi], ebx
    adc edx, [edi + 4]
    rol esi, 3
    add esi, edx
    shr ebx, 1
    dec ecx
    jnz loop_top
    cli
    pushfd
    mov ebp, esp
    push edi
    push esi
    push edx
    push ecx
    push ebx
    push eax
    mov esi, esp
.dump:
    mov ebx, [esi]
    call hex_line
    add esi, 4
    cmp esi, ebp
    jbe .dump
    mov ebx, [CHECKED]
    call hex_line
    mov al, 0x10
    cmp dword [BAD], 0
    je .exit
    mov al, 0x11
.exit:
    out 0xf4, al
    hlt

hex_line:                       ; ebx as 8 hex digits and a newline on port 0x402
    mov ecx, 8
    mov dx, 0x402
.digit:
    rol ebx, 4
    mov eax, ebx
    and eax, 0xf
    add al, '0'
    cmp al, '9'
    jbe .out
    add al, 'a' - '0' - 10
.out:
    out dx, al
    dec ecx
    jnz .digit
    mov al, 10
    out dx, al
    ret

timer_irq:
    push eax
    push edx
    cmp dword [esp + 8], ROM + loop_top
    jne .eoi
    inc dword [CHECKED]
    mov edx, [esp + 16]         ; the interrupted EFLAGS
    test ecx, ecx
    pushfd
    pop eax
    xor eax, edx
    and eax, 0x8c4              ; OF SF ZF PF
    jz .eoi
    inc dword [BAD]
.eoi:
    mov al, 0x20                ; EOI
    out 0x20, al
    pop edx
    pop eax
    iret

    IRQ0_1KHZ_DATA

FLAT32_ROM_END
