/*
 * ACPI tables for kernels that find devices only through ACPI (Debian's Linux: virtio-mmio
 * as LNRO0005 devices, CPUs from the MADT): RSDP -> XSDT -> FADT (hardware-reduced) -> DSDT,
 * and the MADT. All of it sits in the reserved BIOS area at BOOT_ACPI_ADDR, where both the
 * zero page's acpi_rsdp_addr and a BIOS-area scan for "RSD PTR " find it.
 */
#include <stdio.h>

#include "guest-boot/aml.h"
#include "guest-boot/internal.h"
#include "vmm/util.h"

#define ACPI_AREA_END BOOT_RESET_VECTOR
#define HDR_LEN 36 /* every table's header */
#define RSDP_LEN 36
#define FADT_LEN 276 /* revision 6 */
#define FADT_HW_REDUCED_ACPI (1u << 20)
#define FADT_RESET_REG_SUP (1u << 10)
#define FADT_PWR_BUTTON (1u << 4) /* set: no fixed-feature power button */
#define FADT_SLP_BUTTON (1u << 5) /* set: no fixed-feature sleep button */
#define MADT_PCAT_COMPAT (1u << 0)
#define IAPC_VGA_NOT_PRESENT (1u << 2)
#define IAPC_CMOS_RTC_NOT_PRESENT (1u << 5)
#define IOAPIC_ADDR 0xfec00000u
#define LAPIC_ADDR 0xfee00000u
#define DSDT_MAX 8192
#define COM1_IRQ 4

static uint8_t acpi_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += p[i];
	return -sum;
}

static void acpi_header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	put32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, "TERN  ", 6);   /* OEM ID */
	memcpy(t + 16, "TERNVMM ", 8); /* OEM table ID */
	put32(t + 24, 1);	       /* OEM revision */
	memcpy(t + 28, "TERN", 4);     /* creator ID */
	put32(t + 32, 1);	       /* creator revision */
}

static void acpi_seal(uint8_t *t)
{
	t[9] = 0;
	t[9] = acpi_checksum(t, get32(t + 4));
}

/* Where the next table goes: 16-byte aligned, inside the reserved area. */
struct acpi_alloc {
	struct guest_mem *mem;
	uint64_t next;
};

static uint8_t *acpi_alloc(struct acpi_alloc *al, uint32_t len, uint64_t *addr)
{
	*addr = ALIGN_UP(al->next, 16);
	if (*addr + len > ACPI_AREA_END)
		return NULL;
	al->next = *addr + len;
	memset(al->mem->base + *addr, 0, len);
	return al->mem->base + *addr;
}

static void acpi_dsdt_dev(struct aml *a, int n, const struct boot_dev *d)
{
	char name[5];
	size_t dev, res;

	snprintf(name, sizeof(name), "VR%02X", n & 0xff);
	dev = aml_device_begin(a, name);
	aml_name(a, "_HID");
	aml_string(a, "LNRO0005");
	aml_name(a, "_UID");
	aml_integer(a, n);
	aml_name(a, "_CRS");
	res = aml_restemplate_begin(a);
	aml_memory32_fixed(a, true, d->base, d->size);
	aml_interrupt(a, true, false, d->irq);
	aml_restemplate_end(a, res);
	aml_pkg_end(a, dev);
}

static void acpi_dsdt_com1(struct aml *a)
{
	size_t dev, res;

	dev = aml_device_begin(a, "COM1");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0501");
	aml_name(a, "_UID");
	aml_integer(a, 1);
	aml_name(a, "_CRS");
	res = aml_restemplate_begin(a);
	aml_io16(a, 0x3f8, 0x3f8, 0, 8);
	aml_irq_noflags(a, COM1_IRQ);
	aml_restemplate_end(a, res);
	aml_pkg_end(a, dev);
}

/* QEMU's pvpanic (QEMU0001): Linux's pvpanic-mmio driver finds its port here. */
static void acpi_dsdt_pvpanic(struct aml *a)
{
	size_t dev, res;

	dev = aml_device_begin(a, "PEVT");
	aml_name(a, "_HID");
	aml_string(a, "QEMU0001");
	aml_name(a, "_CRS");
	res = aml_restemplate_begin(a);
	aml_io16(a, BOOT_PVPANIC_PORT, BOOT_PVPANIC_PORT, 1, 1);
	aml_restemplate_end(a, res);
	aml_pkg_end(a, dev);
}

/* \_S5: soft off, the sleep type a guest writes to the FADT's sleep control register. */
static void acpi_dsdt_s5(struct aml *a)
{
	size_t pkg;

	aml_name(a, "_S5_");
	pkg = aml_package_begin(a, 4);
	aml_integer(a, BOOT_SLP_TYP_S5); /* SLP_TYPa */
	aml_integer(a, BOOT_SLP_TYP_S5); /* SLP_TYPb */
	aml_integer(a, 0);
	aml_integer(a, 0);
	aml_pkg_end(a, pkg);
}

static int acpi_dsdt(struct acpi_alloc *al, const struct boot_cfg *cfg, uint64_t *addr)
{
	uint8_t body[DSDT_MAX];
	struct aml a;
	uint8_t *t;
	size_t sb;

	aml_init(&a, body, sizeof(body));
	acpi_dsdt_s5(&a);
	sb = aml_scope_begin(&a, "\\_SB_");
	acpi_dsdt_com1(&a);
	acpi_dsdt_pvpanic(&a);
	for (int i = 0; i < cfg->ndevs && i < BOOT_MAX_DEVS; i++)
		acpi_dsdt_dev(&a, i, &cfg->devs[i]);
	aml_pkg_end(&a, sb);
	if (a.overflow || !(t = acpi_alloc(al, HDR_LEN + a.len, addr)))
		return -1;
	acpi_header(t, "DSDT", HDR_LEN + a.len, 2); /* revision 2: 64-bit integers */
	memcpy(t + HDR_LEN, body, a.len);
	acpi_seal(t);
	return 0;
}

/* Generic Address Structure: one byte in I/O space. */
static void acpi_gas_io8(uint8_t *g, uint64_t port)
{
	g[0] = 1; /* SystemIO */
	g[1] = 8; /* bit width */
	g[2] = 0; /* bit offset */
	g[3] = 1; /* byte access */
	put64(g + 4, port);
}

static int acpi_fadt(struct acpi_alloc *al, uint64_t dsdt, uint64_t *addr)
{
	uint8_t *t = acpi_alloc(al, FADT_LEN, addr);

	if (!t)
		return -1;
	acpi_header(t, "FACP", FADT_LEN, 6);
	put32(t + 40, dsdt); /* DSDT */
	/* No 8042 bit: tern's i8042 is only a reset line, which Linux's driver would probe. */
	put16(t + 109, IAPC_VGA_NOT_PRESENT | IAPC_CMOS_RTC_NOT_PRESENT);
	/*
	 * No PM blocks, no SCI: hardware-reduced. Reset goes through the i8042 tern has. No
	 * buttons: with PWR_BUTTON and SLP_BUTTON clear the FADT claims fixed-feature ones, and
	 * Linux adds a power and a sleep button device that nothing can ever press.
	 */
	put32(t + 112, FADT_HW_REDUCED_ACPI | FADT_RESET_REG_SUP | FADT_PWR_BUTTON |
			   FADT_SLP_BUTTON);
	acpi_gas_io8(t + 116, BOOT_RESET_PORT); /* RESET_REG */
	t[128] = BOOT_RESET_VALUE;		/* RESET_VALUE */
	t[131] = 0;			/* minor version: 6.0 */
	put64(t + 140, dsdt);		/* X_DSDT */
	/* Power off (S5) through the sleep registers, so that a guest's poweroff ends tern. */
	acpi_gas_io8(t + 244, BOOT_SLEEP_CONTROL_PORT); /* SLEEP_CONTROL_REG */
	acpi_gas_io8(t + 256, BOOT_SLEEP_STATUS_PORT);	/* SLEEP_STATUS_REG */
	memcpy(t + 268, "TERNVMM ", 8); /* hypervisor vendor identity */
	acpi_seal(t);
	return 0;
}

static int acpi_madt(struct acpi_alloc *al, unsigned ncpus, uint64_t *addr)
{
	uint32_t len = HDR_LEN + 8 + ncpus * 8 + 12;
	uint8_t *t = acpi_alloc(al, len, addr), *e;

	if (!t)
		return -1;
	acpi_header(t, "APIC", len, 5);
	put32(t + 36, LAPIC_ADDR);
	/*
	 * KVM's in-kernel irqchip has the 8259 pair too, and wires it to the boot CPU's LINT0 in
	 * virtual-wire mode: an OS that enables the I/O APIC must mask it, as PCAT_COMPAT says.
	 */
	put32(t + 40, MADT_PCAT_COMPAT);
	e = t + 44;
	for (unsigned i = 0; i < ncpus; i++, e += 8) {
		/* Processor Local APIC: type 0, length 8, UID, APIC ID, flags (enabled) */
		e[0] = 0;
		e[1] = 8;
		e[2] = i;
		e[3] = i;
		put32(e + 4, 1);
	}
	e[0] = 1; /* I/O APIC: type 1, length 12, id 0, address, GSI base 0 */
	e[1] = 12;
	put32(e + 4, IOAPIC_ADDR);
	acpi_seal(t);
	return 0;
}

static int acpi_xsdt(struct acpi_alloc *al, const uint64_t *tables, int n, uint64_t *addr)
{
	uint32_t len = HDR_LEN + 8 * n;
	uint8_t *t = acpi_alloc(al, len, addr);

	if (!t)
		return -1;
	acpi_header(t, "XSDT", len, 1);
	for (int i = 0; i < n; i++)
		put64(t + HDR_LEN + 8 * i, tables[i]);
	acpi_seal(t);
	return 0;
}

static void acpi_rsdp(uint8_t *r, uint64_t xsdt)
{
	memset(r, 0, RSDP_LEN);
	memcpy(r, "RSD PTR ", 8);
	memcpy(r + 9, "TERN  ", 6);
	r[15] = 2; /* revision: ACPI 2.0+, XSDT */
	put32(r + 20, RSDP_LEN);
	put64(r + 24, xsdt);
	r[8] = acpi_checksum(r, 20); /* covers the ACPI 1.0 part */
	r[32] = acpi_checksum(r, RSDP_LEN);
}

int acpi_build(struct guest_mem *mem, const struct boot_cfg *cfg, uint64_t *rsdp)
{
	/* The RSDP comes first, at the 16-byte boundary a BIOS-area scan checks. */
	struct acpi_alloc al = {mem, BOOT_ACPI_ADDR + RSDP_LEN};
	unsigned ncpus = cfg->ncpus ? cfg->ncpus : 1;
	uint64_t dsdt, tables[2], xsdt;

	if (ncpus > 255) {
		errorf("acpi: %u CPUs is more than the MADT's 8-bit APIC IDs allow", ncpus);
		return -1;
	}
	if (acpi_dsdt(&al, cfg, &dsdt) < 0 || acpi_fadt(&al, dsdt, &tables[0]) < 0 ||
	    acpi_madt(&al, ncpus, &tables[1]) < 0 || acpi_xsdt(&al, tables, 2, &xsdt) < 0) {
		errorf("acpi: the tables do not fit in 0x%llx-0x%llx", BOOT_ACPI_ADDR,
		       ACPI_AREA_END);
		return -1;
	}
	acpi_rsdp(mem->base + BOOT_ACPI_ADDR, xsdt);
	*rsdp = BOOT_ACPI_ADDR;
	return 0;
}
