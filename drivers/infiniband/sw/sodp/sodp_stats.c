// SPDX-License-Identifier: GPL-2.0
/*
 * sodp counters per RDMA device.
 *
 * A driver allocates one struct sodp_dev_stats per ib_device and gives it
 * to sodp_umem_get() for every umem of that device. The umem then counts
 * each event three times: in its own counters (rdma statistic mr), in the
 * global totals (debugfs) and in its device's, which the driver reports
 * as hw counters (rdma statistic show link, the port's hw_counters in
 * sysfs). The object is reference counted: a driver may free an MR, and so
 * its umem, from a work item that runs after the device is gone.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bug.h>
#include <linux/kref.h>
#include <linux/percpu.h>
#include <linux/slab.h>

#include "sodp_priv.h"

/**
 * sodp_dev_stats_alloc() - allocate the sodp counters of a device
 *
 * All counters start at zero. The caller owns one reference, dropped with
 * sodp_dev_stats_put() when the device is freed.
 *
 * Context: process context. May sleep.
 * Return: the counters, or NULL when out of memory.
 */
struct sodp_dev_stats *sodp_dev_stats_alloc(void)
{
	struct sodp_dev_stats *stats;

	stats = kzalloc(sizeof(*stats), GFP_KERNEL);
	if (!stats)
		return NULL;
	stats->cnt = alloc_percpu(struct sodp_dev_pcpu);
	if (!stats->cnt) {
		kfree(stats);
		return NULL;
	}
	kref_init(&stats->ref);
	return stats;
}
EXPORT_SYMBOL_GPL(sodp_dev_stats_alloc);

/**
 * sodp_dev_stats_get() - take a reference for a new umem
 * @stats: the counters, or NULL (then nothing is done)
 *
 * Context: any.
 */
void sodp_dev_stats_get(struct sodp_dev_stats *stats)
{
	if (stats)
		kref_get(&stats->ref);
}

static void sodp_dev_stats_free(struct kref *ref)
{
	struct sodp_dev_stats *stats = container_of(ref, struct sodp_dev_stats,
						    ref);

	free_percpu(stats->cnt);
	kfree(stats);
}

/**
 * sodp_dev_stats_put() - drop a reference to the counters of a device
 * @stats: the counters, or NULL (then nothing is done)
 *
 * The driver drops the reference sodp_dev_stats_alloc() gave it when it
 * frees its device; the counters are freed once the umems created with
 * them are released too.
 *
 * Context: any (free_percpu() does not sleep).
 */
void sodp_dev_stats_put(struct sodp_dev_stats *stats)
{
	if (stats)
		kref_put(&stats->ref, sodp_dev_stats_free);
}
EXPORT_SYMBOL_GPL(sodp_dev_stats_put);

/**
 * sodp_dev_stats_read() - read counters of a device into an array
 * @stats: the counters, or NULL (every value is then 0)
 * @ids: which counter goes into each element of @values
 * @n: number of elements of @ids and @values
 * @values: filled with the counters, @values[i] with counter @ids[i]
 *
 * For a driver's get_hw_stats(): @ids lists the counters in the order of
 * its rdma_stat_desc table, so that a driver may leave out counters that
 * cannot move on it (deferrals). The counters are summed over the CPUs
 * while they change, so two values are not a snapshot of one instant;
 * SODP_DEV_PAGES_HELD is never reported below 0.
 *
 * Context: any.
 */
void sodp_dev_stats_read(struct sodp_dev_stats *stats,
			 const enum sodp_dev_counter *ids, unsigned int n,
			 u64 *values)
{
	unsigned int i;
	int cpu;

	for (i = 0; i < n; i++) {
		enum sodp_dev_counter c = ids[i];
		u64 sum = 0;

		values[i] = 0;
		if (!stats || WARN_ON_ONCE(c >= SODP_DEV_NUM_COUNTERS))
			continue;
		for_each_possible_cpu(cpu)
			sum += per_cpu_ptr(stats->cnt, cpu)->c[c];
		/*
		 * Below 0 when a reference was dropped on a CPU summed
		 * after the take on a CPU summed before was missed.
		 */
		if (c == SODP_DEV_PAGES_HELD && (s64)sum < 0)
			sum = 0;
		values[i] = sum;
	}
}
EXPORT_SYMBOL_GPL(sodp_dev_stats_read);
