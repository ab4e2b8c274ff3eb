#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Deterministic synthetic `perf script` text (mixed comms, kernel/JIT/libc/[unknown]
# frames, +0x offsets, C++/Go/Java symbols) for the perf-input throughput
# measurement in docs/benchmarking.md.  Usage: gen-perf-script.py BYTES > out.txt
import random,sys
r=random.Random(1)
target=int(sys.argv[1])
comms=['java','swapper','bash','postgres','V8 WorkerThread','kworker/0:1','nginx','python3']
mods=['[kernel.kallsyms]','/usr/lib/x86_64-linux-gnu/libc.so.6','/tmp/perf-1234.map','/usr/bin/postgres','/usr/lib/jvm/libjvm.so','[unknown]','/usr/bin/python3.11']
syms=['native_safe_halt','do_syscall_64','entry_SYSCALL_64_after_hwframe','__x64_sys_read','vfs_read','ksys_read','__libc_read','PostgresMain','ExecutorRun','standard_ExecutorRun','ExecScan','heap_getnextslot','Ljava/lang/String;::hashCode','Lorg/foo/Bar;.baz(I)V','Interpreter','[unknown]','std::vector<int>::push_back(int const&)','(anonymous namespace)::helper(int)','net/http.(*Client).Do','_PyEval_EvalFrameDefault','PyObject_Call','malloc','memcpy','__memmove_avx_unaligned_erms']
out=sys.stdout
n=0;t=0.0
# a pool of stacks
pool=[]
for i in range(5000):
    d=r.randint(5,40)
    pool.append([(r.randrange(1<<48), r.choice(syms)+('+0x%x'%r.randrange(4096) if r.random()<0.7 else ''), r.choice(mods)) for _ in range(d)])
buf=[]
size=0
while size<target:
    c=r.choice(comms); pid=r.randrange(1,50000); t+=0.0001
    h='%s %d/%d [%03d] %.6f: %d cpu-clock:\n'%(c,pid,pid+r.randrange(3),r.randrange(64),t,r.choice([10101010,250000,1]))
    s=''.join('\t%16x %s (%s)\n'%f for f in r.choice(pool))+'\n'
    buf.append(h); buf.append(s); size+=len(h)+len(s)
    if len(buf)>10000: out.write(''.join(buf)); buf=[]
out.write(''.join(buf))
