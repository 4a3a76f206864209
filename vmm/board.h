/*
 * Small fixed devices of the board: i8042 reset, ACPI power-off, pvpanic and the boot-marker
 * port.
 */
#ifndef TERN_BOARD_H
#define TERN_BOARD_H

#include <stdint.h>

struct vm;

/* Port 0x64: 0xFE (pulse reset) is how OSv powers off or reboots: the guest has exited. */
int i8042_create(struct vm *vm);

/* Ports 0x3C0-0x3C1: ACPI's sleep control and status; sleep type 5 (soft off) exits tern. */
int acpi_sleep_create(struct vm *vm);

/* Port 0x505: QEMU's pvpanic; a guest that reports a panic ends tern with status 1. */
int pvpanic_create(struct vm *vm);

/*
 * Port 0x3F0: the test guest writes 1 at its first instruction and OSv writes 123 when
 * booted. With trace set, tern prints both moments as CLOCK_REALTIME nanoseconds, so a
 * benchmark can measure from its own exec of tern.
 */
int bootmarker_create(struct vm *vm, int trace);

#endif
