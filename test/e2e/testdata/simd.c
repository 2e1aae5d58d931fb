/*
 * simd: a busy loop with live values in vector, x87 and general registers
 * and a changed FP environment (rounding upward, FTZ and DAZ set).
 *
 * spin_regs loads known patterns into ymm0-15 (xmm0-15 when built without
 * AVX2), two x87 stack slots and rbx, rbp, r9, r10, r12-r15, publishes the
 * pidfile with a bare rename syscall (so the dump finds the task inside the
 * loop), spins on the SIGTERM flag without touching those registers, and
 * stores them all back. Every byte must survive checkpoint/restore.
 * An alarm (ITIMER_REAL, 1200 s) ends the loop if no SIGTERM ever comes;
 * it must still be armed, and not later than it was, after restore.
 */
#include "common.h"
#include <fenv.h>
#include <sys/time.h>

#ifdef __AVX2__
#define VW 32
#define VLD(i) "vmovdqu " #i "*32(%rdi), %ymm" #i "\n\t"
#define VST(i) "vmovdqu %ymm" #i ", " #i "*32(%rsi)\n\t"
#define VZ "vzeroupper\n\t"
#else
#define VW 16
#define VLD(i) "movdqu " #i "*16(%rdi), %xmm" #i "\n\t"
#define VST(i) "movdqu %xmm" #i ", " #i "*16(%rsi)\n\t"
#define VZ ""
#endif
#define STR_(x) #x
#define STR(x) STR_(x)
#define GOFF (16 * VW)
#define NGPR 8
#define BUFLEN (GOFF + NGPR * 8 + 16)
#define ALL16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)

static const char *gpr_names[NGPR] = {"rbx", "rbp", "r12", "r13", "r14", "r15", "r9", "r10"};

/* spin_regs(in, out, flag, tmp_pidfile, pidfile) */
void spin_regs(const void *in, void *out, volatile sig_atomic_t *flag, const char *tmp, const char *final);
__asm__(".text\n\t"
	".globl spin_regs\n\t"
	".type spin_regs,@function\n"
	"spin_regs:\n\t"
	"push %rbx\n\tpush %rbp\n\tpush %r12\n\tpush %r13\n\tpush %r14\n\tpush %r15\n\t"
	"push %rsi\n\tpush %rdx\n\t"
	ALL16(VLD)
	"fldl " STR(GOFF) "+64(%rdi)\n\t"
	"fldl " STR(GOFF) "+72(%rdi)\n\t"
	"mov " STR(GOFF) "+0(%rdi), %rbx\n\t"
	"mov " STR(GOFF) "+8(%rdi), %rbp\n\t"
	"mov " STR(GOFF) "+16(%rdi), %r12\n\t"
	"mov " STR(GOFF) "+24(%rdi), %r13\n\t"
	"mov " STR(GOFF) "+32(%rdi), %r14\n\t"
	"mov " STR(GOFF) "+40(%rdi), %r15\n\t"
	"mov " STR(GOFF) "+48(%rdi), %r9\n\t"
	"mov " STR(GOFF) "+56(%rdi), %r10\n\t"
	"mov $82, %eax\n\t" /* rename(tmp, final) */
	"mov %rcx, %rdi\n\t"
	"mov %r8, %rsi\n\t"
	"syscall\n\t"
	"mov (%rsp), %rdx\n"
	"1:\n\t"
	"cmpl $0, (%rdx)\n\t"
	"jne 2f\n\t"
	"pause\n\t"
	"jmp 1b\n"
	"2:\n\t"
	"pop %rdx\n\t"
	"pop %rsi\n\t"
	ALL16(VST)
	"fstpl " STR(GOFF) "+72(%rsi)\n\t"
	"fstpl " STR(GOFF) "+64(%rsi)\n\t"
	"mov %rbx, " STR(GOFF) "+0(%rsi)\n\t"
	"mov %rbp, " STR(GOFF) "+8(%rsi)\n\t"
	"mov %r12, " STR(GOFF) "+16(%rsi)\n\t"
	"mov %r13, " STR(GOFF) "+24(%rsi)\n\t"
	"mov %r14, " STR(GOFF) "+32(%rsi)\n\t"
	"mov %r15, " STR(GOFF) "+40(%rsi)\n\t"
	"mov %r9, " STR(GOFF) "+48(%rsi)\n\t"
	"mov %r10, " STR(GOFF) "+56(%rsi)\n\t"
	VZ
	"pop %r15\n\tpop %r14\n\tpop %r13\n\tpop %r12\n\tpop %rbp\n\tpop %rbx\n\t"
	"ret\n\t"
	".size spin_regs, .-spin_regs\n");

static uint8_t in[BUFLEN] __attribute__((aligned(64)));
static uint8_t out[BUFLEN] __attribute__((aligned(64)));

static uint32_t get_mxcsr(void)
{
	uint32_t v;
	__asm__ volatile("stmxcsr %0" : "=m"(v));
	return v;
}

static uint16_t get_x87cw(void)
{
	uint16_t v;
	__asm__ volatile("fnstcw %0" : "=m"(v));
	return v;
}

static void hex(char *dst, const uint8_t *p, int n)
{
	for (int i = n - 1; i >= 0; i--)
		dst += sprintf(dst, "%02x", p[i]);
}

int main(void)
{
	install_term();
	fill(in, GOFF + NGPR * 8, 900, 0);
	double x87[2] = {1.0 / 7.0, -12345.678};
	memcpy(in + GOFF + NGPR * 8, x87, sizeof(x87));

	if (fesetround(FE_UPWARD))
		die("fesetround failed");
	uint32_t want_mxcsr = get_mxcsr() | 0x8040; /* FTZ | DAZ */
	__asm__ volatile("ldmxcsr %0" ::"m"(want_mxcsr));
	uint32_t mxcsr = get_mxcsr();
	uint16_t cw = get_x87cw();

	/* Watchdog: the busy loop cannot check the time itself. */
	alarm(1200);
	double armed = mono_now();

	/* The pidfile is published from inside spin_regs. */
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	int fd = open("pidfile.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, buf, n) != n)
		die("write pidfile.tmp: %s", strerror(errno));
	close(fd);

	spin_regs(in, out, &got_term, "pidfile.tmp", "pidfile");

	struct itimerval it;
	getitimer(ITIMER_REAL, &it);
	double left = it.it_value.tv_sec + it.it_value.tv_usec / 1e6, el = mono_now() - armed;
	if (left <= 0 || left > 1200 - el + 1)
		failf("alarm has %.3fs left %.3fs after arming it for 1200s", left, el);
	alarm(0);

	uint32_t mxcsr_after = get_mxcsr();
	uint16_t cw_after = get_x87cw();
	if ((mxcsr_after & ~0x3fu) != (mxcsr & ~0x3fu)) /* ignore exception flags */
		failf("MXCSR 0x%x after, 0x%x before", mxcsr_after, mxcsr);
	if (cw_after != cw)
		failf("x87 control word 0x%x after, 0x%x before", cw_after, cw);
	if (fegetround() != FE_UPWARD)
		failf("rounding mode %d, want FE_UPWARD (%d)", fegetround(), FE_UPWARD);
	volatile double one = 1.0, three = 3.0;
	double third = one / three;
	uint64_t bits;
	memcpy(&bits, &third, 8);
	if (bits != 0x3FD5555555555556ULL)
		failf("1.0/3.0 = 0x%016llx, want 0x3fd5555555555556 (rounded up)", (unsigned long long)bits);

	char a[80], b[80];
	for (int i = 0; i < 16; i++)
		if (memcmp(in + i * VW, out + i * VW, VW)) {
			hex(a, out + i * VW, VW);
			hex(b, in + i * VW, VW);
			failf("%s%d = %s, want %s", VW == 32 ? "ymm" : "xmm", i, a, b);
		}
	for (int i = 0; i < NGPR; i++) {
		uint64_t g, w;
		memcpy(&g, out + GOFF + i * 8, 8);
		memcpy(&w, in + GOFF + i * 8, 8);
		if (g != w)
			failf("%s = 0x%016llx, want 0x%016llx", gpr_names[i], (unsigned long long)g, (unsigned long long)w);
	}
	double got[2];
	memcpy(got, out + GOFF + NGPR * 8, sizeof(got));
	for (int i = 0; i < 2; i++)
		if (memcmp(&got[i], &x87[i], 8))
			failf("x87 slot %d = %.17g, want %.17g", i, got[i], x87[i]);
	logf_("checked 16 %s registers, %d GPRs, 2 x87 slots, MXCSR 0x%x, x87 CW 0x%x", VW == 32 ? "ymm" : "xmm",
	      NGPR, mxcsr, cw);
	finish();
}
