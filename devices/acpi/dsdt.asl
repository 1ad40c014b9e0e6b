/*
 * retrovisor's DSDT: the i440FX/PIIX3 PC with the PIIX4-style PM function
 * (devices/acpi_pm.c).  Compiled at build time with iasl (Debian's
 * acpica-tools) and handed to SeaBIOS through fw_cfg by monitor/acpi_tables.c,
 * which also patches COMP (below) to say which COM ports exist.
 *
 * The power button is ACPI's fixed-feature button (PWRBTN_STS in PM1, see
 * the FADT), so it has no device here: Linux makes LNXPWRBN from the FADT.
 */
DefinitionBlock ("dsdt.aml", "DSDT", 1, "RETROV", "RVPC", 1)
{
    /* Sleep states: SLP_TYP values as the PIIX4 decodes them.  Only S5. */
    Name (\_S0, Package (4) { 5, 5, 0, 0 })
    Name (\_S5, Package (4) { 0, 0, 0, 0 })

    /* 0: the 8259s (the default until the OS says otherwise), 1: the I/O APIC. */
    Name (PICF, 0)
    Method (\_PIC, 1, NotSerialized)
    {
        PICF = Arg0
    }

    /* Bit 0: COM1 exists, bit 1: COM2.  The table builder replaces the 0xAA. */
    Name (COMP, 0xAA)

    Scope (\_GPE)
    {
        Name (_HID, "ACPI0006")
    }

    Scope (\_SB)
    {
        Device (CPU0)
        {
            Name (_HID, "ACPI0007")
            Name (_UID, 0)
        }

        Device (PCI0)
        {
            Name (_HID, EisaId ("PNP0A03"))
            Name (_UID, 0)
            Name (_BBN, 0)

            Name (_CRS, ResourceTemplate ()
            {
                WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
                    0x0000, 0x0000, 0x00FF, 0x0000, 0x0100)
                IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08)
                WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
                    0x0000, 0x0000, 0x0CF7, 0x0000, 0x0CF8)
                WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
                    0x0000, 0x0D00, 0xFFFF, 0x0000, 0xF300)
                /* Legacy video memory. */
                DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,
                    0x00000000, 0x000A0000, 0x000BFFFF, 0x00000000, 0x00020000)
                /* SeaBIOS allocates BARs downwards from the I/O APIC; guest RAM
                 * ends at 0xE0000000 at most (-m 3584). */
                DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
                    0x00000000, 0xE0000000, 0xFEBFFFFF, 0x00000000, 0x1EC00000)
            })

            /*
             * PCI interrupt routing.  The board wires slot S's INTA-D (pin P,
             * 0-3) onto PIRQ (S + P - 1) & 3 (devices/pci.c).  With the 8259s
             * the PIRQs are the link devices LNKA-D (the PIIX3's routing
             * registers); with the I/O APIC they are its pins 16-19.
             */
            Method (_PRT, 0, NotSerialized)
            {
                Local0 = Package (128) {}
                Local1 = 0
                While (Local1 < 128)
                {
                    Local2 = Local1 >> 2
                    Local3 = Local1 & 3
                    Local4 = (Local2 + Local3 + 3) & 3
                    If (PICF)
                    {
                        Local5 = APRT (Local4)
                    }
                    Else
                    {
                        Local5 = PPRT (Local4)
                    }
                    Local5[0] = (Local2 << 16) | 0xFFFF
                    Local5[1] = Local3
                    Local0[Local1] = Local5
                    Local1++
                }
                Return (Local0)
            }

            /* A _PRT entry's template for PIRQ Arg0, 8259 mode: the link LNKA-D. */
            Method (PPRT, 1, NotSerialized)
            {
                If (Arg0 == 0)
                {
                    Return (Package (4) { 0, 0, LNKA, 0 })
                }
                If (Arg0 == 1)
                {
                    Return (Package (4) { 0, 0, LNKB, 0 })
                }
                If (Arg0 == 2)
                {
                    Return (Package (4) { 0, 0, LNKC, 0 })
                }
                Return (Package (4) { 0, 0, LNKD, 0 })
            }

            /* The same for the I/O APIC: GSIA-D, which say level and active high
             * (the polarity the PCI lines have here, as on QEMU's PC). */
            Method (APRT, 1, NotSerialized)
            {
                If (Arg0 == 0)
                {
                    Return (Package (4) { 0, 0, GSIA, 0 })
                }
                If (Arg0 == 1)
                {
                    Return (Package (4) { 0, 0, GSIB, 0 })
                }
                If (Arg0 == 2)
                {
                    Return (Package (4) { 0, 0, GSIC, 0 })
                }
                Return (Package (4) { 0, 0, GSID, 0 })
            }

            /* The PIIX3 PCI-to-ISA bridge, 00:01.0. */
            Device (ISA)
            {
                Name (_ADR, 0x00010000)

                OperationRegion (PIRQ, PCI_Config, 0x60, 0x04)
                Field (PIRQ, ByteAcc, NoLock, Preserve)
                {
                    PRQA, 8,
                    PRQB, 8,
                    PRQC, 8,
                    PRQD, 8
                }

                Device (PIC)
                {
                    Name (_HID, EisaId ("PNP0000"))
                    Name (_CRS, ResourceTemplate ()
                    {
                        IO (Decode16, 0x0020, 0x0020, 0x01, 0x02)
                        IO (Decode16, 0x00A0, 0x00A0, 0x01, 0x02)
                        IO (Decode16, 0x04D0, 0x04D0, 0x01, 0x02)
                        IRQNoFlags () {2}
                    })
                }

                Device (TMR)
                {
                    Name (_HID, EisaId ("PNP0100"))
                    Name (_CRS, ResourceTemplate ()
                    {
                        IO (Decode16, 0x0040, 0x0040, 0x01, 0x04)
                        IRQNoFlags () {0}
                    })
                }

                Device (RTC)
                {
                    Name (_HID, EisaId ("PNP0B00"))
                    Name (_CRS, ResourceTemplate ()
                    {
                        IO (Decode16, 0x0070, 0x0070, 0x01, 0x02)
                        IRQNoFlags () {8}
                    })
                }

                Device (SPKR)
                {
                    Name (_HID, EisaId ("PNP0800"))
                    Name (_CRS, ResourceTemplate ()
                    {
                        IO (Decode16, 0x0061, 0x0061, 0x01, 0x01)
                    })
                }

                Device (FPU)
                {
                    Name (_HID, EisaId ("PNP0C04"))
                    Name (_CRS, ResourceTemplate ()
                    {
                        IO (Decode16, 0x00F0, 0x00F0, 0x01, 0x01)
                        IRQNoFlags () {13}
                    })
                }

                /* SeaBIOS looks for PNP0303 here before it sets up the keyboard. */
                Device (KBD)
                {
                    Name (_HID, EisaId ("PNP0303"))
                    Name (_CRS, ResourceTemplate ()
                    {
                        IO (Decode16, 0x0060, 0x0060, 0x01, 0x01)
                        IO (Decode16, 0x0064, 0x0064, 0x01, 0x01)
                        IRQNoFlags () {1}
                    })
                }

                Device (MOU)
                {
                    Name (_HID, EisaId ("PNP0F13"))
                    Name (_CRS, ResourceTemplate ()
                    {
                        IRQNoFlags () {12}
                    })
                }

                Device (COM1)
                {
                    Name (_HID, EisaId ("PNP0501"))
                    Name (_UID, 1)
                    Method (_STA, 0, NotSerialized)
                    {
                        If (COMP & 1)
                        {
                            Return (0x0F)
                        }
                        Return (0)
                    }
                    Name (_CRS, ResourceTemplate ()
                    {
                        IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08)
                        IRQNoFlags () {4}
                    })
                }

                Device (COM2)
                {
                    Name (_HID, EisaId ("PNP0501"))
                    Name (_UID, 2)
                    Method (_STA, 0, NotSerialized)
                    {
                        If (COMP & 2)
                        {
                            Return (0x0F)
                        }
                        Return (0)
                    }
                    Name (_CRS, ResourceTemplate ()
                    {
                        IO (Decode16, 0x02F8, 0x02F8, 0x01, 0x08)
                        IRQNoFlags () {3}
                    })
                }

                /* Ports the chipset and the monitor claim: the PM block,
                 * the APM ports, fw_cfg, the debug console, the reset register. */
                Device (RES)
                {
                    Name (_HID, EisaId ("PNP0C02"))
                    Name (_UID, 1)
                    Name (_CRS, ResourceTemplate ()
                    {
                        IO (Decode16, 0x0600, 0x0600, 0x01, 0x40)
                        IO (Decode16, 0x00B2, 0x00B2, 0x01, 0x02)
                        IO (Decode16, 0x0510, 0x0510, 0x01, 0x0C)
                        IO (Decode16, 0x0402, 0x0402, 0x01, 0x01)
                    })
                }
            }
        }

        /*
         * PIRQ link devices for the 8259 mode.  Register 0x60+N of the PIIX3:
         * bit 7 disables the route, bits 0-3 are the ISA IRQ.
         */
        Method (PRSX, 1, NotSerialized)
        {
            /* Whether the route in Arg0 is on. */
            If (Arg0 & 0x80)
            {
                Return (0x09)
            }
            Return (0x0B)
        }

        Method (PCRS, 1, NotSerialized)
        {
            Local0 = ResourceTemplate ()
            {
                Interrupt (ResourceConsumer, Level, ActiveHigh, Shared, , , LIRQ) {0}
            }
            CreateDWordField (Local0, LIRQ._INT, IRQW)
            If (!(Arg0 & 0x80))
            {
                IRQW = Arg0 & 0x0F
            }
            Return (Local0)
        }

        Name (PPRS, ResourceTemplate ()
        {
            Interrupt (ResourceConsumer, Level, ActiveHigh, Shared) {5, 10, 11}
        })

        Device (LNKA)
        {
            Name (_HID, EisaId ("PNP0C0F"))
            Name (_UID, 1)
            Method (_STA, 0, NotSerialized) { Return (PRSX (\_SB.PCI0.ISA.PRQA)) }
            Method (_PRS, 0, NotSerialized) { Return (PPRS) }
            Method (_CRS, 0, NotSerialized) { Return (PCRS (\_SB.PCI0.ISA.PRQA)) }
            Method (_DIS, 0, NotSerialized) { \_SB.PCI0.ISA.PRQA |= 0x80 }
            Method (_SRS, 1, NotSerialized)
            {
                CreateDWordField (Arg0, 0x05, IRQN)
                \_SB.PCI0.ISA.PRQA = IRQN
            }
        }

        Device (LNKB)
        {
            Name (_HID, EisaId ("PNP0C0F"))
            Name (_UID, 2)
            Method (_STA, 0, NotSerialized) { Return (PRSX (\_SB.PCI0.ISA.PRQB)) }
            Method (_PRS, 0, NotSerialized) { Return (PPRS) }
            Method (_CRS, 0, NotSerialized) { Return (PCRS (\_SB.PCI0.ISA.PRQB)) }
            Method (_DIS, 0, NotSerialized) { \_SB.PCI0.ISA.PRQB |= 0x80 }
            Method (_SRS, 1, NotSerialized)
            {
                CreateDWordField (Arg0, 0x05, IRQN)
                \_SB.PCI0.ISA.PRQB = IRQN
            }
        }

        Device (LNKC)
        {
            Name (_HID, EisaId ("PNP0C0F"))
            Name (_UID, 3)
            Method (_STA, 0, NotSerialized) { Return (PRSX (\_SB.PCI0.ISA.PRQC)) }
            Method (_PRS, 0, NotSerialized) { Return (PPRS) }
            Method (_CRS, 0, NotSerialized) { Return (PCRS (\_SB.PCI0.ISA.PRQC)) }
            Method (_DIS, 0, NotSerialized) { \_SB.PCI0.ISA.PRQC |= 0x80 }
            Method (_SRS, 1, NotSerialized)
            {
                CreateDWordField (Arg0, 0x05, IRQN)
                \_SB.PCI0.ISA.PRQC = IRQN
            }
        }

        Device (LNKD)
        {
            Name (_HID, EisaId ("PNP0C0F"))
            Name (_UID, 4)
            Method (_STA, 0, NotSerialized) { Return (PRSX (\_SB.PCI0.ISA.PRQD)) }
            Method (_PRS, 0, NotSerialized) { Return (PPRS) }
            Method (_CRS, 0, NotSerialized) { Return (PCRS (\_SB.PCI0.ISA.PRQD)) }
            Method (_DIS, 0, NotSerialized) { \_SB.PCI0.ISA.PRQD |= 0x80 }
            Method (_SRS, 1, NotSerialized)
            {
                CreateDWordField (Arg0, 0x05, IRQN)
                \_SB.PCI0.ISA.PRQD = IRQN
            }
        }

        /* The PIRQs as I/O APIC pins 16-19: fixed routes. */
        Device (GSIA)
        {
            Name (_HID, EisaId ("PNP0C0F"))
            Name (_UID, 16)
            Name (_STA, 0x0B)
            Name (_PRS, ResourceTemplate ()
            {
                Interrupt (ResourceConsumer, Level, ActiveHigh, Shared) {16}
            })
            Name (_CRS, ResourceTemplate ()
            {
                Interrupt (ResourceConsumer, Level, ActiveHigh, Shared) {16}
            })
            Method (_SRS, 1, NotSerialized)
            {
            }
        }

        Device (GSIB)
        {
            Name (_HID, EisaId ("PNP0C0F"))
            Name (_UID, 17)
            Name (_STA, 0x0B)
            Name (_PRS, ResourceTemplate ()
            {
                Interrupt (ResourceConsumer, Level, ActiveHigh, Shared) {17}
            })
            Name (_CRS, ResourceTemplate ()
            {
                Interrupt (ResourceConsumer, Level, ActiveHigh, Shared) {17}
            })
            Method (_SRS, 1, NotSerialized)
            {
            }
        }

        Device (GSIC)
        {
            Name (_HID, EisaId ("PNP0C0F"))
            Name (_UID, 18)
            Name (_STA, 0x0B)
            Name (_PRS, ResourceTemplate ()
            {
                Interrupt (ResourceConsumer, Level, ActiveHigh, Shared) {18}
            })
            Name (_CRS, ResourceTemplate ()
            {
                Interrupt (ResourceConsumer, Level, ActiveHigh, Shared) {18}
            })
            Method (_SRS, 1, NotSerialized)
            {
            }
        }

        Device (GSID)
        {
            Name (_HID, EisaId ("PNP0C0F"))
            Name (_UID, 19)
            Name (_STA, 0x0B)
            Name (_PRS, ResourceTemplate ()
            {
                Interrupt (ResourceConsumer, Level, ActiveHigh, Shared) {19}
            })
            Name (_CRS, ResourceTemplate ()
            {
                Interrupt (ResourceConsumer, Level, ActiveHigh, Shared) {19}
            })
            Method (_SRS, 1, NotSerialized)
            {
            }
        }
    }
}
