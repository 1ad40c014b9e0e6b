/*
 * 16550A UART.  COM1 = 0x3F8/IRQ4, COM2 = 0x2F8/IRQ3.  Transmitted bytes go
 * to the chardev at once (no baud-rate pacing); received bytes come from
 * the chardev through its handlers, fed by chardev_poll_all.  As on a PC
 * the interrupt only reaches the PIC while MCR bit 3 (OUT2) is set.
 */
#ifndef RV_UART_H
#define RV_UART_H

#include <stdint.h>

struct bus;
struct chardev;
struct uart;

#define UART_COM1_BASE 0x3f8
#define UART_COM1_IRQ 4
#define UART_COM2_BASE 0x2f8
#define UART_COM2_IRQ 3

/* cd may be NULL: output is dropped and no input ever arrives. */
struct uart *uart_new(struct bus *b, uint16_t base, int irq, struct chardev *cd);
void uart_free(struct uart *u);

#endif
