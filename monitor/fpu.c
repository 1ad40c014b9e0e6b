/*
 * x87 coprocessor.  Until the x87 unit is implemented the machine behaves as
 * a 386 without a 387: CPUID reports no FPU, ESC instructions honour CR0.EM
 * and CR0.TS (#NM, so an OS can emulate), and otherwise do nothing — which
 * is exactly what an FPU probe (FNINIT; FNSTSW into a preset word) detects as
 * "no coprocessor present".
 */
#include "monitor/interp.h"

bool fpu_implemented(void) { return false; }

void fpu_reset(struct cpu *c)
{
    (void)c;
}

void fpu_exec(struct cpu *c, const struct insn *in)
{
    if (c->cr0 & (CR0_EM | CR0_TS))
        cpu_raise_noerr(c, EXC_NM);
    (void)in;
}

void fpu_wait(struct cpu *c)
{
    if ((c->cr0 & (CR0_MP | CR0_TS)) == (CR0_MP | CR0_TS))
        cpu_raise_noerr(c, EXC_NM);
}
