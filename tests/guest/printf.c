/* A small vsnprintf and printf over the serial port. No floating point (no SSE here). */
#include "lib.h"
#include "serial.h"

struct out {
	char *buf;
	size_t size, len;
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void put_num(struct out *o, unsigned long long v, int base, int upper, int neg,
		    int width, int prec, int left, char pad)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int n = 0, len;

	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	while (n < prec)
		tmp[n++] = '0';
	len = n + neg;
	if (left || pad != '0') {
		for (; !left && len < width; width--)
			put(o, ' ');
		if (neg)
			put(o, '-');
	} else {
		if (neg)
			put(o, '-');
		for (; len < width; width--)
			put(o, '0');
	}
	while (n)
		put(o, tmp[--n]);
	for (; left && len < width; width--)
		put(o, ' ');
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };

	for (; *fmt; fmt++) {
		int left = 0, width = 0, prec = -1, lng = 0, alt = 0;
		char pad = ' ';

		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		for (;; fmt++) {
			if (*fmt == '-')
				left = 1;
			else if (*fmt == '#')
				alt = 1;
			else if (*fmt == '0')
				pad = '0';
			else
				break;
		}
		if (*fmt == '*') {
			width = va_arg(ap, int);
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + *fmt++ - '0';
		if (*fmt == '.') {
			prec = 0;
			fmt++;
			if (*fmt == '*') {
				prec = va_arg(ap, int);
				fmt++;
			}
			while (*fmt >= '0' && *fmt <= '9')
				prec = prec * 10 + *fmt++ - '0';
		}
		while (*fmt == 'l' || *fmt == 'z') {
			lng++;
			fmt++;
		}
		switch (*fmt) {
		case 'd':
		case 'i': {
			long long v = lng ? va_arg(ap, long long) : va_arg(ap, int);
			unsigned long long u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;

			put_num(&o, u, 10, 0, v < 0, width, prec, left, pad);
			break;
		}
		case 'u':
		case 'x':
		case 'X':
		case 'o': {
			unsigned long long v = lng ? va_arg(ap, unsigned long long)
						   : va_arg(ap, unsigned int);
			int base = *fmt == 'u' ? 10 : *fmt == 'o' ? 8 : 16;

			if (alt && base == 16) {
				put(&o, '0');
				put(&o, 'x');
			}

			put_num(&o, v, base, *fmt == 'X', 0, width, prec, left, pad);
			break;
		}
		case 'p':
			put(&o, '0');
			put(&o, 'x');
			put_num(&o, (uintptr_t)va_arg(ap, void *), 16, 0, 0, width, prec, left, pad);
			break;
		case 'c':
			put(&o, (char)va_arg(ap, int));
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			int n;

			if (!s)
				s = "(null)";
			for (n = 0; s[n] && (prec < 0 || n < prec); n++)
				;
			if (!left)
				for (; n < width; width--)
					put(&o, ' ');
			for (int i = 0; i < n; i++)
				put(&o, s[i]);
			if (left)
				for (; n < width; width--)
					put(&o, ' ');
			break;
		}
		case '%':
			put(&o, '%');
			break;
		case '\0':
			fmt--;
			break;
		default:
			put(&o, '%');
			put(&o, *fmt);
		}
	}
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

int vprintf(const char *fmt, va_list ap)
{
	char buf[512];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);

	puts_raw(buf);
	return n;
}

int printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vprintf(fmt, ap);
	va_end(ap);
	return n;
}

void puts_raw(const char *s)
{
	serial_write(s, strlen(s));
}
