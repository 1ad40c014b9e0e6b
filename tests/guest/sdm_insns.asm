; A 64 KiB BIOS-replacement ROM for tests/e2e/sdm_rom.sh: the instructions a
; 64-bit host cannot run natively (DAA DAS AAA AAS AAM AAD, AAM 0, BOUND,
; PUSHA/POPA, INTO, LES/LDS, ARPL) over many inputs, one text line per case
; on the debug console (port 0xE9), so that the output of one CPU can be
; compared with another's (retrovisor's two engines, QEMU TCG).
;
; Lines: TAG, then the inputs, then the results, in hex.  Flags are printed
; whole (the arithmetic ones, & 0x8D5); the comparing script masks the ones
; the SDM leaves undefined.  Exceptions go through the real-mode IVT to a
; handler that records the vector and steps over the faulting instruction:
; "--" is printed where none was raised.  ARPL runs with CR0.PE set (still in
; the 16-bit code segment the ROM started in): it is #UD in real mode, which
; is checked too.  The ROM ends through isa-debug-exit with 0x10 (status 33).
;
; Assemble from the repository's top folder: nasm -f bin tests/guest/sdm_insns.asm

bits 16
org 0

%define EXC    0x0500          ; word: the vector the last case raised, or 0xFFFF
%define SKIP   0x0502          ; word: the length of the instruction a fault steps over
%define INAX   0x0504
%define INFL   0x0506
%define ROUND  0x0508
%define SAVESP 0x050a
%define MEMOP  0x0600          ; memory operands (BOUND's bounds, far pointers, ARPL's word)
%define FRAME  0x0700          ; POPA's frame
%define STACK  0x7000

start:
    cli
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, STACK
    cld
    ; IVT: #DE #OF #BR #UD to the recording handlers (ROM segment F000)
    mov word [0 * 4], exc0
    mov word [0 * 4 + 2], 0xf000
    mov word [4 * 4], exc4
    mov word [4 * 4 + 2], 0xf000
    mov word [5 * 4], exc5
    mov word [5 * 4 + 2], 0xf000
    mov word [6 * 4], exc6
    mov word [6 * 4 + 2], 0xf000

    call bcd_tests
    call aam_aad_tests
    call bound_tests
    call pusha_popa_tests
    call into_tests
    call far_pointer_tests
    call arpl_tests

    mov si, t_end
    call puts
    call nl
    mov al, 0x10
    out 0xf4, al
    cli
    hlt

; ---------------------------------------------------------------------------
; output

nib:                            ; AL's low nibble as a hex digit
    and al, 0x0f
    add al, '0'
    cmp al, '9'
    jbe .out
    add al, 7
.out:
    out 0xe9, al
    ret

hex8:                           ; AL
    push ax
    push ax
    shr al, 4
    call nib
    pop ax
    call nib
    pop ax
    ret

hex16:                          ; AX, then a space
    push ax
    xchg al, ah
    call hex8
    xchg al, ah
    call hex8
    mov al, ' '
    out 0xe9, al
    pop ax
    ret

hex32:                          ; EAX, then a space
    push eax
    push eax
    shr eax, 16
    xchg al, ah
    call hex8
    xchg al, ah
    call hex8
    pop eax
    call hex16
    pop eax
    ret

puts:                           ; the NUL-ended string at CS:SI, then a space
    push ax
    push si
.next:
    cs lodsb
    test al, al
    jz .done
    out 0xe9, al
    jmp .next
.done:
    mov al, ' '
    out 0xe9, al
    pop si
    pop ax
    ret

nl:
    push ax
    mov al, 10
    out 0xe9, al
    pop ax
    ret

print_exc:                      ; the vector recorded, or "--"
    push ax
    mov ax, [EXC]
    cmp ax, 0xffff
    je .none
    call hex8
    jmp .done
.none:
    mov al, '-'
    out 0xe9, al
    out 0xe9, al
.done:
    mov al, ' '
    out 0xe9, al
    pop ax
    ret

; arm: no exception yet; a fault steps over %1 bytes
%macro ARM 1
    mov word [EXC], 0xffff
    mov word [SKIP], %1
%endmacro

; ---------------------------------------------------------------------------
; exception handlers: record the vector, step over the faulting instruction
; (a trap such as INTO's #OF already returns after it: SKIP 0 there)

exc0:
    mov word [EXC], 0
    jmp exc_common
exc4:
    mov word [EXC], 4
    jmp exc_common
exc5:
    mov word [EXC], 5
    jmp exc_common
exc6:
    mov word [EXC], 6
exc_common:
    push bp
    mov bp, sp
    push ax
    mov ax, [SKIP]
    add [bp + 2], ax
    pop ax
    pop bp
    iret

; ---------------------------------------------------------------------------
; DAA DAS AAA AAS: every AL, with CF, AF and (OF SF ZF PF) set or clear in
; the flags before, AH 0x5A (AAA/AAS: also 0xFF, where AH wraps).
; Line: TAG AX-before FLAGS-before AX-after FLAGS-after

; flags before from the case number's bits 8-10
set_bcd_flags:                  ; CX: case; sets [INFL] and [INAX]
    push ax
    push bx
    mov bx, 0x0002
    test ch, 1
    jz .a
    or bl, 0x01                 ; CF
.a:
    test ch, 2
    jz .b
    or bl, 0x10                 ; AF
.b:
    test ch, 4
    jz .c
    or bx, 0x08c4               ; OF SF ZF PF
.c:
    mov [INFL], bx
    pop bx
    pop ax
    ret

print_ax_fl:                    ; [INAX] [INFL] AX DX&0x8D5, end of line
    push ax
    mov ax, [INAX]
    call hex16
    mov ax, [INFL]
    call hex16
    pop ax
    call hex16
    push ax
    mov ax, dx
    and ax, 0x08d5
    call hex16
    pop ax
    call nl
    ret

%macro BCD_LOOP 3               ; tag string, instruction, AH
    xor cx, cx
%%loop:
    call set_bcd_flags
    mov al, cl
    mov ah, %3
    mov [INAX], ax
    push word [INFL]
    popf
    %2
    pushf
    pop dx
    mov si, %1
    call puts
    call print_ax_fl
    inc cx
    cmp cx, 0x800
    jb %%loop
%endmacro

bcd_tests:
    BCD_LOOP t_daa, daa, 0x5a
    BCD_LOOP t_das, das, 0x5a
    BCD_LOOP t_aaa, aaa, 0x5a
    BCD_LOOP t_aaa, aaa, 0xff
    BCD_LOOP t_aas, aas, 0x5a
    BCD_LOOP t_aas, aas, 0x00
    ret

; ---------------------------------------------------------------------------
; AAM imm8 and AAD imm8 with several bases: every AL, AH from the case, the
; arithmetic flags all set or all clear before.  AAM 0 must raise #DE and
; leave AX alone.  Line: TAG AX-before FLAGS-before AX-after FLAGS-after;
; AAM 0: TAG AX-before AX-after vector

%macro AAMD_LOOP 3              ; tag string, aam|aad, base
    xor cx, cx
%%loop:
    mov al, cl
    mov ah, cl
    xor ah, 0xa5
    mov [INAX], ax
    mov bx, 0x0002
    test cl, 1
    jz %%f
    mov bx, 0x08d7
%%f:
    mov [INFL], bx
    push bx
    popf
    %2 %3
    pushf
    pop dx
    mov si, %1
    call puts
    mov bl, %3
    push ax
    mov al, bl
    call hex8
    mov al, ' '
    out 0xe9, al
    pop ax
    call print_ax_fl
    inc cx
    cmp cx, 0x100
    jb %%loop
%endmacro

aam_aad_tests:
    AAMD_LOOP t_aam, aam, 10
    AAMD_LOOP t_aam, aam, 16
    AAMD_LOOP t_aam, aam, 7
    AAMD_LOOP t_aam, aam, 1
    AAMD_LOOP t_aam, aam, 0xff
    AAMD_LOOP t_aad, aad, 10
    AAMD_LOOP t_aad, aad, 16
    AAMD_LOOP t_aad, aad, 7
    AAMD_LOOP t_aad, aad, 0
    AAMD_LOOP t_aad, aad, 0xff
    ; AAM 0: #DE
    xor cx, cx
.aam0:
    mov ax, cx
    mov [INAX], ax
    ARM 2
    aam 0
    mov si, t_aam0
    call puts
    push ax
    mov ax, [INAX]
    call hex16
    pop ax
    call hex16
    call print_exc
    call nl
    add cx, 0x1111
    jnc .aam0
    ret

; ---------------------------------------------------------------------------
; BOUND r16, m16&16 and BOUND r32, m32&32 for every (index, lower, upper)
; from eight interesting values.  Line: TAG index lower upper vector

bound_tests:
    xor si, si                  ; index's value number
.idx:
    xor di, di                  ; lower's
.lo:
    xor bx, bx                  ; upper's
.hi:
    push bx
    shl bx, 2
    mov eax, [cs:vals32 + bx]
    mov [MEMOP + 8], eax        ; 32-bit upper
    mov [MEMOP + 2], ax         ; 16-bit upper
    mov bx, di
    shl bx, 2
    mov eax, [cs:vals32 + bx]
    mov [MEMOP + 4], eax        ; 32-bit lower
    mov [MEMOP], ax             ; 16-bit lower
    mov bx, si
    shl bx, 2
    mov edx, [cs:vals32 + bx]   ; index
    ; BOUND DX, [MEMOP] (16-bit: lower at MEMOP, upper at MEMOP+2)
    ARM 4
    bound dx, [MEMOP]
    push si
    mov si, t_bound16
    call puts
    pop si
    mov ax, dx
    call hex16
    mov ax, [MEMOP]
    call hex16
    mov ax, [MEMOP + 2]
    call hex16
    call print_exc
    call nl
    ; BOUND EDX, [MEMOP + 4] (32-bit: lower at MEMOP+4, upper at MEMOP+8)
    ARM 5
    bound edx, [MEMOP + 4]
    push si
    mov si, t_bound32
    call puts
    pop si
    mov eax, edx
    call hex32
    mov eax, [MEMOP + 4]
    call hex32
    mov eax, [MEMOP + 8]
    call hex32
    call print_exc
    call nl
    pop bx
    inc bx
    cmp bx, 8
    jb .hi
    inc di
    cmp di, 8
    jb .lo
    inc si
    cmp si, 8
    jb .idx
    ; a register operand is #UD (62 C2 = BOUND AX, DX)
    ARM 2
    db 0x62, 0xc2
    mov si, t_bound_reg
    call puts
    call print_exc
    call nl
    ret

vals32:
    dd 0, 1, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xfffffffe

; ---------------------------------------------------------------------------
; PUSHA/POPA and PUSHAD/POPAD: the eight slots pushed (ESP as it was before),
; SP after; the registers POPA loads from a frame (SP's slot skipped).
; Lines: PUSHA slot0..slot7 SP; POPA AX CX DX BX SP BP SI DI

pusha_popa_tests:
    mov cx, 4
.round:
    mov [ROUND], cx
    mov [SAVESP], sp
    mov bx, cx
    shl bx, 1
    sub sp, bx                  ; SP differs per round
    call load_patterns
    mov [INAX], sp
    pusha
    mov si, t_pusha
    call puts
    mov bx, sp
.w16:
    mov ax, [bx]
    call hex16
    add bx, 2
    cmp bx, [INAX]
    jb .w16
    mov ax, sp
    call hex16
    call nl
    mov sp, [INAX]
    call load_patterns
    pushad
    mov si, t_pushad
    call puts
    mov bx, sp
.w32:
    mov eax, [bx]
    call hex32
    add bx, 4
    cmp bx, [INAX]
    jb .w32
    mov ax, sp
    call hex16
    call nl
    mov sp, [INAX]
    ; POPA from a frame of fresh values (the SP slot's is skipped)
    xor bx, bx
.fill16:
    mov ax, bx
    imul ax, ax, 0x1357
    xor ax, 0x9bdf
    add ax, [ROUND]
    mov [FRAME + bx], ax
    add bx, 2
    cmp bx, 16
    jb .fill16
    mov sp, FRAME
    popa
    mov [INFL], sp
    mov sp, [INAX]
    push si
    mov si, t_popa
    call puts
    pop si
    call print_regs16
    xor bx, bx
.fill32:
    movzx eax, bx
    imul eax, eax, 0x13572468
    xor eax, 0x9bdf0ace
    add ax, [ROUND]
    mov [FRAME + bx], eax
    add bx, 4
    cmp bx, 32
    jb .fill32
    mov sp, FRAME
    popad
    mov [INFL], sp
    mov sp, [INAX]
    push si
    mov si, t_popad
    call puts
    pop si
    call print_regs32
    mov sp, [SAVESP]
    mov cx, [ROUND]
    dec cx
    jnz .round
    ret

load_patterns:
    mov eax, 0x11111111
    mov ecx, 0x22222222
    mov edx, 0x33333333
    mov ebx, 0x44444444
    mov ebp, 0x55555555
    mov esi, 0x66666666
    mov edi, 0x77777777
    add ax, [ROUND]
    ret

print_regs16:                   ; AX CX DX BX (SP after POPA) BP SI DI
    call hex16
    push ax
    mov ax, cx
    call hex16
    mov ax, dx
    call hex16
    mov ax, bx
    call hex16
    mov ax, [INFL]
    call hex16
    mov ax, bp
    call hex16
    mov ax, si
    call hex16
    mov ax, di
    call hex16
    call nl
    pop ax
    ret

print_regs32:
    call hex32
    push eax
    mov eax, ecx
    call hex32
    mov eax, edx
    call hex32
    mov eax, ebx
    call hex32
    mov ax, [INFL]
    call hex16
    mov eax, ebp
    call hex32
    mov eax, esi
    call hex32
    mov eax, edi
    call hex32
    call nl
    pop eax
    ret

; ---------------------------------------------------------------------------
; INTO with OF clear and set (by an ADD that overflows or not), and with the
; other arithmetic flags either way.  Line: INTO FLAGS-before vector

into_tests:
    xor cx, cx
.case:
    mov al, 0x7f
    test cl, 1
    jz .add
    mov al, 0x10
.add:
    add al, cl                  ; OF from 0x7f + even CL > 0
    pushf
    pop dx
    ARM 0
    into
    mov si, t_into
    call puts
    mov ax, dx
    and ax, 0x08d5
    call hex16
    call print_exc
    call nl
    inc cx
    cmp cx, 16
    jb .case
    ret

; ---------------------------------------------------------------------------
; LES/LDS r16 and r32 from a far pointer in memory; a register source is
; #UD.  Line: TAG register segment

far_pointer_tests:
    mov dword [MEMOP], 0x89abcdef
    mov word [MEMOP + 4], 0x1234
    mov word [MEMOP + 2], 0x2345    ; the 16-bit form's selector at +2
    les di, [MEMOP]
    mov si, t_les16
    call puts
    mov ax, di
    call hex16
    mov ax, es
    call hex16
    call nl
    les edi, [MEMOP]
    mov si, t_les32
    call puts
    mov eax, edi
    call hex32
    mov ax, es
    call hex16
    call nl
    mov word [MEMOP + 2], 0xcdef
    lds bx, [MEMOP]
    mov ax, ds
    xor cx, cx
    mov ds, cx                  ; back to 0 before the next memory access
    mov si, t_lds16
    call puts
    push ax
    mov ax, bx
    call hex16
    pop ax
    call hex16
    call nl
    mov word [MEMOP + 2], 0x89ab
    lds ebx, [MEMOP]
    mov ax, ds
    xor cx, cx
    mov ds, cx
    mov si, t_lds32
    call puts
    push eax
    mov eax, ebx
    call hex32
    pop eax
    call hex16
    call nl
    xor ax, ax
    mov es, ax
    ARM 2
    db 0xc4, 0xc2               ; LES AX, DX
    mov si, t_les_reg
    call puts
    call print_exc
    call nl
    ret

; ---------------------------------------------------------------------------
; ARPL r/m16, r16 for every pair of RPLs, with selector bits above them
; from the case, in a register and in memory; with CR0.PE set.  In real
; mode it is #UD.  Line: TAG dest-before source dest-after FLAGS-after

arpl_tests:
    ARM 2
    arpl dx, cx
    mov si, t_arpl_real
    call puts
    call print_exc
    call nl
    mov eax, cr0
    or al, 1
    mov cr0, eax                ; CS, DS, SS keep their real-mode caches
    xor cx, cx
.case:
    mov dx, cx
    imul dx, dx, 0x0b3d
    and dl, 0xfc
    mov bx, cx
    and bx, 3
    or dx, bx                   ; destination RPL: bits 0-1 of the case
    mov bx, cx
    shr bx, 2
    and bx, 3
    mov ax, cx
    imul ax, ax, 0x5e11
    and al, 0xfc
    or ax, bx                   ; source RPL: bits 2-3
    mov [MEMOP], dx
    mov [INAX], dx
    test cl, 0x40
    jnz .flags_set
    push word 0x0002
    jmp .go
.flags_set:
    push word 0x08d7
.go:
    popf
    arpl dx, ax
    pushf
    pop bx
    mov si, t_arpl
    call puts
    push ax
    mov ax, [INAX]
    call hex16
    pop ax
    call hex16
    push ax
    mov ax, dx
    call hex16
    mov ax, bx
    and ax, 0x08d5
    call hex16
    call nl
    pop ax
    ; the memory form, flags clear
    push word 0x0002
    popf
    arpl [MEMOP], ax
    pushf
    pop bx
    mov si, t_arpl_mem
    call puts
    push ax
    mov ax, [INAX]
    call hex16
    pop ax
    call hex16
    mov ax, [MEMOP]
    call hex16
    mov ax, bx
    and ax, 0x08d5
    call hex16
    call nl
    inc cx
    cmp cx, 0x80
    jb .case
    mov eax, cr0
    and al, 0xfe
    mov cr0, eax
    ret

t_daa: db "DAA", 0
t_das: db "DAS", 0
t_aaa: db "AAA", 0
t_aas: db "AAS", 0
t_aam: db "AAM", 0
t_aad: db "AAD", 0
t_aam0: db "AAM0", 0
t_bound16: db "BOUND16", 0
t_bound32: db "BOUND32", 0
t_bound_reg: db "BOUNDREG", 0
t_pusha: db "PUSHA", 0
t_pushad: db "PUSHAD", 0
t_popa: db "POPA", 0
t_popad: db "POPAD", 0
t_into: db "INTO", 0
t_les16: db "LES16", 0
t_les32: db "LES32", 0
t_lds16: db "LDS16", 0
t_lds32: db "LDS32", 0
t_les_reg: db "LESREG", 0
t_arpl_real: db "ARPLREAL", 0
t_arpl: db "ARPL", 0
t_arpl_mem: db "ARPLMEM", 0
t_end: db "END", 0

    times 0xfff0 - ($ - $$) db 0
reset_vector:                   ; physical 0xFFFFFFF0, CS base 0xFFFF0000
    jmp 0xf000:start
    times 0x10000 - ($ - $$) db 0
