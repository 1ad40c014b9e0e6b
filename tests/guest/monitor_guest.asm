; The monitor console's test guest (tests/e2e/monitor.sh): a floppy boot
; sector that SeaBIOS loads at 0x7C00.  It prints "boot" on COM1, enters
; protected mode with paging (4 MiB pages: linear 0 and linear 0x400000 both
; map physical 0, so `x` and `xp` of the same bytes differ by 0x400000),
; jumps to its alias at 0x400000 + 0x7Cxx, and then polls with interrupts
; off, printing on COM1:
;   "key XX"        each byte the keyboard controller hands it (sendkey),
;   "power button"  when the ACPI power button status bit is set
;                   (system_powerdown), which it then clears,
;   "tick XXXXXXXX" now and then, so the test sees whether the CPU runs.
; Linear 0x800000 and up is not mapped.
        bits 16
        org 0x7c00

COM1    equ 0x3f8
PGDIR   equ 0x1000
ALIAS   equ 0x400000

start:
        cli
        jmp 0:.flat
.flat:
        xor ax, ax
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov sp, 0x7c00
        mov si, msg_boot
.boot:  lodsb
        test al, al
        jz .pm
        mov ah, al
        mov dx, COM1 + 5
.wait:  in al, dx
        test al, 0x20
        jz .wait
        mov al, ah
        mov dx, COM1
        out dx, al
        jmp .boot
.pm:
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
        mov edi, PGDIR
        mov ecx, 1024
        xor eax, eax
        rep stosd
        mov dword [PGDIR], 0x83              ; 0-4 MiB -> 0, 4 MiB page, writable
        mov dword [PGDIR + 4], 0x83          ; 4-8 MiB -> 0 as well
        mov eax, cr4
        or eax, 0x10                         ; PSE
        mov cr4, eax
        mov eax, PGDIR
        mov cr3, eax
        mov eax, cr0
        or eax, 0x80000000
        mov cr0, eax
        jmp 0x08:ALIAS + high

high:
        mov esp, ALIAS + 0x7c00
        ; The PM block's base: PMBA of the PIIX4 PM function, 00:01.3 register 0x40.
        mov eax, 0x80000b40
        mov dx, 0xcf8
        out dx, eax
        mov dx, 0xcfc
        in eax, dx
        and eax, 0xffc0
        mov ebp, eax                         ; 0: no ACPI
        xor ebx, ebx                         ; tick counter
        xor edi, edi                         ; loop counter
poll:
        in al, 0x64
        test al, 1
        jz .nokey
        mov ah, al
        in al, 0x60
        test ah, 0x20                        ; mouse byte: not ours
        jnz .nokey
        mov esi, ALIAS + msg_key
        call puts
        call puthex8
        mov al, 10
        call putc
.nokey:
        test ebp, ebp
        jz .nopower
        mov edx, ebp
        in ax, dx
        test ax, 0x100
        jz .nopower
        mov ax, 0x100                        ; write 1 to clear PWRBTN_STS
        out dx, ax
        mov esi, ALIAS + msg_power
        call puts
.nopower:
        inc edi
        test edi, 0x3ffff
        jnz poll
        inc ebx
        mov esi, ALIAS + msg_tick
        call puts
        mov eax, ebx
        rol eax, 8
        call puthex8
        rol eax, 8
        call puthex8
        rol eax, 8
        call puthex8
        rol eax, 8
        call puthex8
        mov al, 10
        call putc
        jmp poll

; esi: NUL-terminated string
puts:
        push eax
.next:  mov al, [esi]
        inc esi
        test al, al
        jz .done
        call putc
        jmp .next
.done:  pop eax
        ret

; al: two hex digits
puthex8:
        push eax
        push eax
        shr al, 4
        call hexdigit
        pop eax
        and al, 15
        call hexdigit
        pop eax
        ret
hexdigit:
        and al, 15
        add al, '0'
        cmp al, '9'
        jbe putc
        add al, 'a' - '9' - 1
putc:
        push edx
        push eax
        mov dx, COM1 + 5
.wait:  in al, dx
        test al, 0x20
        jz .wait
        pop eax
        mov dx, COM1
        out dx, al
        pop edx
        ret

msg_boot:  db "boot", 10, 0
msg_key:   db "key ", 0
msg_power: db "power button", 10, 0
msg_tick:  db "tick ", 0

        align 8
gdt:    dq 0
        dq 0x00cf9a000000ffff                ; 0x08: flat 32-bit code
        dq 0x00cf92000000ffff                ; 0x10: flat 32-bit data
gdtr:   dw gdtr - gdt - 1
        dd gdt

        times 510 - ($ - $$) db 0
        dw 0xaa55
