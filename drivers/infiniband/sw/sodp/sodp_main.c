// SPDX-License-Identifier: GPL-2.0
/*
 * sodp: software On-Demand Paging for the soft-RDMA drivers.
 *
 * Module entry points, module parameters, global counters and debugfs.
 * The mirror, fault path and pinned fast-path cache live in their own files;
 * Documentation/sodp/core.rst describes the design.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/kernel.h>
#include <linux/log2.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "sodp_priv.h"
#include "sodp_version.h"

static unsigned int fault_around_pages = 16;
module_param(fault_around_pages, uint, 0644);
MODULE_PARM_DESC(fault_around_pages,
		 "Pages faulted around a miss, rounded down to a power of 2, 1..512 (default 16)");

static unsigned int cache_pages = 512;
module_param(cache_pages, uint, 0644);
MODULE_PARM_DESC(cache_pages,
		 "Page references cached per umem, 16..65536, read at registration (default 512)");

static unsigned int cache_idle_ms = 200;
module_param(cache_idle_ms, uint, 0644);
MODULE_PARM_DESC(cache_idle_ms,
		 "Cached page references unused for this long are dropped, 10..60000 ms (default 200)");

static const char * const sodp_pin_mode_names[] = {
	[SODP_PIN_MODE_PIN] = "pin",
	[SODP_PIN_MODE_AUTO] = "auto",
	[SODP_PIN_MODE_ALL] = "all",
};

static int sodp_pin_mode_val = SODP_PIN_MODE_PIN;

static int sodp_pin_mode_set(const char *val, const struct kernel_param *kp)
{
	int mode = sysfs_match_string(sodp_pin_mode_names, val);

	if (mode < 0)
		return -EINVAL;
	WRITE_ONCE(sodp_pin_mode_val, mode);
	return 0;
}

static int sodp_pin_mode_get(char *buf, const struct kernel_param *kp)
{
	return scnprintf(buf, PAGE_SIZE, "%s\n",
			 sodp_pin_mode_names[READ_ONCE(sodp_pin_mode_val)]);
}

static const struct kernel_param_ops sodp_pin_mode_ops = {
	.set = sodp_pin_mode_set,
	.get = sodp_pin_mode_get,
};

module_param_cb(pin_mode, &sodp_pin_mode_ops, NULL, 0644);
MODULE_PARM_DESC(pin_mode,
		 "Policy for plain user MRs: pin (default), auto (sodp where pinning is refused), all");

DEFINE_PER_CPU(struct sodp_pcpu_counters, sodp_pcpu_cnt);
atomic64_t sodp_live_umems = ATOMIC64_INIT(0);
atomic64_t sodp_pages_held = ATOMIC64_INIT(0);
atomic64_t sodp_table_chunks = ATOMIC64_INIT(0);
atomic64_t sodp_implicit_children = ATOMIC64_INIT(0);
struct workqueue_struct *sodp_wq;
struct kmem_cache *sodp_cent_cache;
static atomic_t sodp_ids = ATOMIC_INIT(0);
static struct dentry *sodp_debugfs;

/**
 * sodp_pin_mode() - policy for plain (non-ODP) user memory regions
 *
 * Drivers read it when they register a plain MR, so a change applies to
 * MRs registered afterwards.
 *
 * Context: any.
 * Return: the value of the sodp.pin_mode module parameter.
 */
enum sodp_pin_mode sodp_pin_mode(void)
{
	return READ_ONCE(sodp_pin_mode_val);
}
EXPORT_SYMBOL_GPL(sodp_pin_mode);

/**
 * sodp_param_fault_around() - pages to fault around a miss
 *
 * Context: any.
 * Return: fault_around_pages clamped to 1..SODP_CHUNK_PAGES and rounded
 * down to a power of two, so that a window never crosses a chunk.
 */
unsigned int sodp_param_fault_around(void)
{
	unsigned int n = clamp_t(unsigned int, READ_ONCE(fault_around_pages),
				 1, SODP_CHUNK_PAGES);

	return rounddown_pow_of_two(n);
}

/**
 * sodp_param_cache_pages() - bound on the cache of a new umem
 *
 * Context: any.
 * Return: cache_pages clamped to 16..65536.
 */
unsigned int sodp_param_cache_pages(void)
{
	return clamp_t(unsigned int, READ_ONCE(cache_pages), 16, 65536);
}

/**
 * sodp_param_idle_jiffies() - idle time after which a cached page is dropped
 *
 * Context: any.
 * Return: cache_idle_ms clamped to 10..60000, in jiffies (at least 1).
 */
unsigned long sodp_param_idle_jiffies(void)
{
	unsigned int ms = clamp_t(unsigned int, READ_ONCE(cache_idle_ms),
				  10, 60000);

	return max(msecs_to_jiffies(ms), 1UL);
}

/**
 * sodp_next_id() - allocate a umem id for messages and tracepoints
 *
 * Context: any.
 * Return: a number not returned before (until it wraps at 2^32).
 */
u32 sodp_next_id(void)
{
	return atomic_inc_return(&sodp_ids);
}

static const char * const sodp_counter_names[SODP_CNT_MAX] = {
	[SODP_CNT_FAULTS] = "faults",
	[SODP_CNT_PAGES_FAULTED] = "pages_faulted",
	[SODP_CNT_INVALIDATIONS] = "invalidations",
	[SODP_CNT_PAGES_INVALIDATED] = "pages_invalidated",
	[SODP_CNT_PREFETCHES] = "prefetches",
	[SODP_CNT_CACHE_HITS] = "cache_hits",
	[SODP_CNT_CACHE_MISSES] = "cache_misses",
	[SODP_CNT_RECALLS] = "recalls",
	[SODP_CNT_DEFERRALS] = "deferrals",
};

/* debugfs private data: the address of an entry of sodp_counter_ids[] */
static const unsigned int sodp_counter_ids[SODP_CNT_MAX] = {
	SODP_CNT_FAULTS, SODP_CNT_PAGES_FAULTED, SODP_CNT_INVALIDATIONS,
	SODP_CNT_PAGES_INVALIDATED, SODP_CNT_PREFETCHES, SODP_CNT_CACHE_HITS,
	SODP_CNT_CACHE_MISSES, SODP_CNT_RECALLS, SODP_CNT_DEFERRALS,
};

static int sodp_total_get(void *data, u64 *val)
{
	unsigned int c = *(const unsigned int *)data;
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += per_cpu_ptr(&sodp_pcpu_cnt, cpu)->c[c];
	*val = sum;
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(sodp_total_fops, sodp_total_get, NULL, "%llu\n");

static int sodp_atomic64_get(void *data, u64 *val)
{
	*val = atomic64_read(data);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(sodp_atomic64_fops, sodp_atomic64_get, NULL,
			 "%lld\n");

static void sodp_debugfs_init(void)
{
	unsigned int i;

	sodp_debugfs = debugfs_create_dir(KBUILD_MODNAME, NULL);
	debugfs_create_file_unsafe("umems", 0444, sodp_debugfs,
				   &sodp_live_umems, &sodp_atomic64_fops);
	debugfs_create_file_unsafe("pages_held", 0444, sodp_debugfs,
				   &sodp_pages_held, &sodp_atomic64_fops);
	debugfs_create_file_unsafe("table_chunks", 0444, sodp_debugfs,
				   &sodp_table_chunks, &sodp_atomic64_fops);
	debugfs_create_file_unsafe("implicit_children", 0444, sodp_debugfs,
				   &sodp_implicit_children,
				   &sodp_atomic64_fops);
	for (i = 0; i < SODP_CNT_MAX; i++)
		debugfs_create_file_unsafe(sodp_counter_names[i], 0444,
					   sodp_debugfs,
					   (void *)&sodp_counter_ids[i],
					   &sodp_total_fops);
}

static int __init sodp_init(void)
{
	/* A line per entry: hits on different pages do not share one. */
	sodp_cent_cache = KMEM_CACHE(sodp_cent, SLAB_HWCACHE_ALIGN);
	if (!sodp_cent_cache)
		return -ENOMEM;

	sodp_wq = alloc_workqueue("sodp", WQ_UNBOUND, 0);
	if (!sodp_wq)
		goto out_destroy_cache;

	sodp_debugfs_init();
	pr_info("version %s, pin_mode %s\n", SODP_VERSION,
		sodp_pin_mode_names[READ_ONCE(sodp_pin_mode_val)]);
	return 0;

out_destroy_cache:
	kmem_cache_destroy(sodp_cent_cache);
	return -ENOMEM;
}

static void __exit sodp_exit(void)
{
	/* Drivers using sodp hold a module reference while a umem lives. */
	WARN_ON_ONCE(atomic64_read(&sodp_live_umems));
	debugfs_remove_recursive(sodp_debugfs);
	destroy_workqueue(sodp_wq);
	/* Pairs with call_rcu() in sodp_cent_destroy(). */
	rcu_barrier();
	kmem_cache_destroy(sodp_cent_cache);
}

module_init(sodp_init);
module_exit(sodp_exit);

MODULE_DESCRIPTION("Software On-Demand Paging for soft-RDMA drivers");
MODULE_LICENSE("GPL");
MODULE_VERSION(SODP_VERSION);
