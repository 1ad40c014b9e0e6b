; A Multiboot kernel (a.out-kludge header) that checks the local APIC and
; the I/O APIC from the guest's side, through the whole machine: the MSR,
; the MMIO page, IPIs, the timer waking HLT, ISA IRQ 0 through the I/O
; APIC, NMI, illegal vectors, and the APIC page moved over RAM and back.
; Each check prints "ok NAME" or "bad NAME VALUE" on COM1; the kernel
; leaves through isa-debug-exit with 0x10 (exit status 33).
%include "tests/guest/multiboot.inc"

COM1      equ 0x3f8
APIC      equ 0xfee00000
IOAPIC    equ 0xfec00000
RAM_SPOT  equ 0x00300000          ; free RAM the APIC page is moved over

A_ID      equ 0x20
A_VER     equ 0x30
A_TPR     equ 0x80
A_EOI     equ 0xb0
A_SVR     equ 0xf0
A_ISR2    equ 0x120               ; ISR bits 64-95
A_ESR     equ 0x280
A_ICR     equ 0x300
A_LVT_T   equ 0x320
A_LINT0   equ 0x350
A_TINIT   equ 0x380
A_TDIV    equ 0x3e0

V_IPI     equ 0x40
V_TIMER   equ 0x41
V_PIT     equ 0x50

MULTIBOOT_HEADER 0x2                ; memory information

%macro expect 3                   ; expect VALUE-OPERAND, WANTED, name string
    mov eax, %1
    mov edx, %2
    mov esi, %%name
    call report
    jmp %%after
%%name: db %3, 0
%%after:
%endmacro

start:
    mov esp, stack_top
    lgdt [gdt_ptr]
    jmp 0x08:.cs
.cs:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    call build_idt
    lidt [idt_ptr]
    mov al, 0xff                  ; the 8259 out of the way: everything masked
    out 0x21, al
    out 0xa1, al

    ; IA32_APIC_BASE: BSP and enabled at 0xFEE00000; CPUID.1:EDX bit 9
    mov ecx, 0x1b
    rdmsr
    expect eax, 0xfee00900, "msr-apic-base"
    mov eax, 1
    cpuid
    and edx, 1 << 9
    expect edx, 1 << 9, "cpuid-apic"
    expect [APIC + A_VER], 0x50014, "version"
    expect [APIC + A_ID], 0, "id"

    ; software-enable, LINT0 masked (the 8259 no longer reaches the CPU)
    mov dword [APIC + A_SVR], 0x1ff
    mov dword [APIC + A_LINT0], 0x10700

    ; a self-IPI is taken once IF is set, and its handler's EOI ends it
    mov dword [APIC + A_ICR], 0x40000 | V_IPI
    expect [ipi_count], 0, "ipi-waits-for-if"
    sti
    nop
    cli
    expect [ipi_count], 1, "self-ipi"
    expect [APIC + A_ISR2], 0, "eoi-clears-isr"

    ; TPR above the vector's class holds it back
    mov dword [APIC + A_TPR], 0x50
    mov dword [APIC + A_ICR], 0x40000 | V_IPI
    sti
    nop
    cli
    expect [ipi_count], 1, "tpr-blocks"
    mov dword [APIC + A_TPR], 0
    sti
    nop
    cli
    expect [ipi_count], 2, "tpr-lowered"

    ; an illegal vector: no interrupt, "send illegal vector" in ESR after a write
    mov dword [APIC + A_ICR], 0x40000 | 5
    mov dword [APIC + A_ESR], 0
    expect [APIC + A_ESR], 0x20, "esr-illegal-vector"

    ; NMI to self: vector 2 whatever IF says
    mov dword [APIC + A_ICR], 0x40400
    nop
    expect [nmi_count], 1, "self-nmi"

    ; the one-shot timer wakes a halted CPU
    mov dword [APIC + A_LVT_T], V_TIMER
    mov dword [APIC + A_TDIV], 0xb
    mov dword [APIC + A_TINIT], 2000000     ; 2 ms at 1 GHz
    sti
    hlt
    cli
    expect [timer_count], 1, "timer-wakes-hlt"

    ; ISA IRQ 0 (the PIT) reaches the CPU through I/O APIC pin 2
    mov dword [IOAPIC], 0x01
    expect [IOAPIC + 0x10], 0x170011, "ioapic-version"
    mov dword [IOAPIC], 0x15
    mov dword [IOAPIC + 0x10], 0
    mov dword [IOAPIC], 0x14
    mov dword [IOAPIC + 0x10], V_PIT
    mov al, 0x34                  ; channel 0, mode 2, 1193 counts: about 1 ms
    out 0x43, al
    mov al, 1193 & 0xff
    out 0x40, al
    mov al, 1193 >> 8
    out 0x40, al
    sti
.wait_pit:
    hlt
    cmp dword [pit_count], 3
    jb .wait_pit
    cli
    mov dword [IOAPIC + 0x10], 0x10000 | V_PIT     ; masked again
    ; (owed ticks may bring one more in before the CLI: at least 3)
    cmp dword [pit_count], 3
    setae al
    movzx eax, al
    expect eax, 1, "pit-through-ioapic"

    ; an MSR the CPU lacks: #GP
    mov ecx, 0x12345
    rdmsr
    expect [gp_count], 1, "unknown-msr-gp"

    ; the APIC page moved over RAM hides it, and gives it back unchanged
    mov dword [RAM_SPOT + A_VER], 0x12345678
    mov ecx, 0x1b
    xor edx, edx
    mov eax, RAM_SPOT | 0x900
    wrmsr
    expect [RAM_SPOT + A_VER], 0x50014, "apic-over-ram"
    mov eax, [APIC + A_VER]
    expect eax, 0xffffffff, "old-page-empty"
    mov ecx, 0x1b
    xor edx, edx
    mov eax, APIC | 0x900
    wrmsr
    expect [RAM_SPOT + A_VER], 0x12345678, "ram-back"
    expect [APIC + A_VER], 0x50014, "apic-back"

    ; reserved bits in IA32_APIC_BASE: #GP, nothing moves
    mov ecx, 0x1b
    xor edx, edx
    mov eax, APIC | 0xd00         ; x2APIC enable
    rdmsr                         ; (re-read to keep EDX:EAX sane)
    mov eax, APIC | 0xd00
    xor edx, edx
    wrmsr
    expect [gp_count], 2, "x2apic-enable-gp"
    expect [APIC + A_VER], 0x50014, "apic-stays"

    ; garbage in every APIC register and every I/O APIC index: the machine
    ; goes on, the registers that are read-only stay so
    cli
    xor ebx, ebx
.garbage_apic:
    mov dword [APIC + ebx], 0xa5a5a5a5
    add ebx, 0x10
    cmp ebx, 0x1000
    jb .garbage_apic
    xor ebx, ebx
.garbage_ioapic:
    mov [IOAPIC], ebx
    mov dword [IOAPIC + 0x10], 0xa5a5a5a5
    inc ebx
    cmp ebx, 0x100
    jb .garbage_ioapic
    expect [APIC + A_VER], 0x50014, "garbage-apic-survives"
    mov dword [IOAPIC], 0x01
    expect [IOAPIC + 0x10], 0x170011, "garbage-ioapic-survives"

    ; disabled in the MSR: the page is gone and CPUID's bit with it
    mov ecx, 0x1b
    xor edx, edx
    mov eax, APIC | 0x100
    wrmsr
    mov eax, 1
    cpuid
    and edx, 1 << 9
    expect edx, 0, "cpuid-apic-disabled"
    expect [APIC + A_VER], 0xffffffff, "page-gone"

    mov esi, msg_done
    call puts
    mov al, 0x10
    out 0xf4, al
    cli
    hlt

; report: EAX = value, EDX = wanted, ESI = name
report:
    push eax
    cmp eax, edx
    jne .bad
    push esi
    mov esi, msg_ok
    call puts
    pop esi
    call puts
    call newline
    pop eax
    ret
.bad:
    push esi
    mov esi, msg_bad
    call puts
    pop esi
    call puts
    mov al, ' '
    call putc
    pop eax
    call put_hex
    jmp newline

; ---- interrupt handlers ----
isr_ipi:
    inc dword [ipi_count]
    mov dword [APIC + A_EOI], 0
    iret
isr_timer:
    inc dword [timer_count]
    mov dword [APIC + A_EOI], 0
    iret
isr_pit:
    inc dword [pit_count]
    mov dword [APIC + A_EOI], 0
    iret
isr_nmi:
    inc dword [nmi_count]
    iret
isr_gp:                           ; skip the 2-byte RDMSR/WRMSR that faulted
    inc dword [gp_count]
    add esp, 4
    add dword [esp], 2
    iret
isr_spurious:
    iret
isr_other:
    mov esi, msg_unexpected
    call puts
    mov al, 0x01
    out 0xf4, al
    cli
    hlt

; set_gate: vector in EBX, handler in EAX
set_gate:
    mov [idt + ebx * 8], ax
    mov word [idt + ebx * 8 + 2], 0x08
    mov word [idt + ebx * 8 + 4], 0x8e00
    shr eax, 16
    mov [idt + ebx * 8 + 6], ax
    ret

build_idt:
    xor ebx, ebx
.all:
    mov eax, isr_other
    call set_gate
    inc ebx
    cmp ebx, 256
    jb .all
    mov ebx, 2
    mov eax, isr_nmi
    call set_gate
    mov ebx, 13
    mov eax, isr_gp
    call set_gate
    mov ebx, V_IPI
    mov eax, isr_ipi
    call set_gate
    mov ebx, V_TIMER
    mov eax, isr_timer
    call set_gate
    mov ebx, V_PIT
    mov eax, isr_pit
    call set_gate
    mov ebx, 0xff
    mov eax, isr_spurious
    call set_gate
    ret

; ---- COM1 ----
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

msg_ok:         db "ok ", 0
msg_bad:        db "bad ", 0
msg_done:       db "apic checks done", 10, 0
msg_unexpected: db "bad unexpected interrupt", 10, 0

align 8
gdt:
    dq 0
    dq 0x00cf9a000000ffff          ; 0x08: flat 32-bit code
    dq 0x00cf92000000ffff          ; 0x10: flat data
gdt_ptr:
    dw gdt_ptr - gdt - 1
    dd gdt
idt_ptr:
    dw 256 * 8 - 1
    dd idt

ipi_count:   dd 0
timer_count: dd 0
pit_count:   dd 0
nmi_count:   dd 0
gp_count:    dd 0

MULTIBOOT_BSS
idt:    resb 256 * 8
MULTIBOOT_END
