// SPDX-License-Identifier: GPL-2.0
/*
 * sodp umem life cycle and the invalidate callback.
 *
 * A umem mirrors [va_start, va_end) of one mm. Nothing is pinned at
 * registration and nothing is charged to RLIMIT_MEMLOCK: pages enter the
 * mirror table on demand and the cache holds short, recallable leases.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/hugetlb_inline.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/wait_bit.h>
#include <rdma/ib_verbs.h>
#include <rdma/restrack.h>
#include <uapi/rdma/rdma_netlink.h>

#include "sodp_priv.h"
#include "sodp_trace.h"

/*
 * Called by the mm before it changes the page tables of [range->start,
 * range->end) (munmap, migration, COW, reclaim, truncation, mprotect,
 * exit). Clears the mirror entries and recalls the cache entries of the
 * part of the range this mirror covers, so when it returns no sodp user
 * can reach those pages any more and no reference is held on them.
 */
static bool sodp_mirror_invalidate(struct mmu_interval_notifier *mni,
				   const struct mmu_notifier_range *range,
				   unsigned long cur_seq)
{
	struct sodp_mirror *mirror = container_of(mni, struct sodp_mirror,
						  mni);
	struct sodp_umem *umem = mirror->umem;
	unsigned long start = max(range->start, mirror->start);
	unsigned long end = min(range->end, mirror->end);
	bool blockable = mmu_notifier_range_blockable(range);
	unsigned long first = start >> PAGE_SHIFT;
	unsigned long last = PAGE_ALIGN(end) >> PAGE_SHIFT;
	unsigned int nrecalled, nwaited;
	bool reclaim = false;
	unsigned long npages;
	LIST_HEAD(recalled);

	/*
	 * A spinlock does not sleep, so even a non-blockable invalidation
	 * (the OOM reaper) may take it: only waiting for copies is ruled out.
	 */
	spin_lock_bh(&umem->lock);
	if (!blockable && !sodp_cache_quiesce_locked(umem, first, last)) {
		spin_unlock_bh(&umem->lock);
		trace_sodp_invalidate(umem->id, start, end, range->event,
				      blockable, 0, false);
		return false;
	}

	/* Makes a fault in progress retry; pairs with read_retry. */
	mmu_interval_set_seq(mni, cur_seq);
	npages = sodp_table_clear_locked(umem, first, last);
	nrecalled = sodp_cache_recall_locked(umem, first, last, &recalled);
	/* Chunks the clear emptied, see sodp_table_clear_locked(). */
	reclaim = npages && umem->reclaim_first < umem->reclaim_end;
	spin_unlock_bh(&umem->lock);

	/* Non-blockable: nothing of the range is in flight, no wait. */
	nwaited = sodp_cache_release_list(umem, &recalled, blockable);
	if (reclaim)
		queue_delayed_work(sodp_wq, &umem->reclaim_work,
				   sodp_param_idle_jiffies());

	sodp_count(umem, SODP_CNT_INVALIDATIONS, 1);
	sodp_count(umem, SODP_CNT_PAGES_INVALIDATED, npages);
	sodp_count(umem, SODP_CNT_RECALLS, nrecalled);
	trace_sodp_invalidate(umem->id, start, end, range->event, blockable,
			      npages, true);
	if (nrecalled)
		trace_sodp_recall(umem->id, start, end, nrecalled, nwaited);
	return true;
}

const struct mmu_interval_notifier_ops sodp_mirror_ops = {
	.invalidate = sodp_mirror_invalidate,
};

/**
 * sodp_umem_drop_range() - forget a page range no notifier covers any more
 * @umem: the umem
 * @first: first absolute page number
 * @end: end page number (exclusive)
 *
 * Context: process context. May sleep (waits for in-flight copies).
 */
void sodp_umem_drop_range(struct sodp_umem *umem, unsigned long first,
			  unsigned long end)
{
	LIST_HEAD(recalled);

	spin_lock_bh(&umem->lock);
	sodp_table_clear_locked(umem, first, end);
	sodp_cache_recall_locked(umem, first, end, &recalled);
	spin_unlock_bh(&umem->lock);
	sodp_cache_release_list(umem, &recalled, true);
}

static int sodp_umem_insert_mirror(struct sodp_umem *umem)
{
	struct sodp_mirror *mirror = &umem->mirror;
	int ret;

	mirror->umem = umem;
	mirror->start = umem->va_start & PAGE_MASK;
	mirror->end = PAGE_ALIGN(umem->va_end);

	/*
	 * Registering the first notifier of an mm needs a live mm. Pairs
	 * with mmput() below; the notifier itself holds an mmgrab().
	 */
	if (!mmget_not_zero(umem->mm))
		return -EFAULT;
	ret = mmu_interval_notifier_insert(&mirror->mni, umem->mm,
					   mirror->start,
					   mirror->end - mirror->start,
					   &sodp_mirror_ops);
	mmput(umem->mm);
	return ret;
}

/*
 * Refuse a registration over memory that every access would be refused
 * (sodp_vma_vet()), as pinning would. Unmapped parts are fine, as for any
 * ODP MR: memory may be mapped there later, and every fault vets its VMA
 * again, so this is only the early answer, not the guard.
 *
 * An IB_ACCESS_HUGETLB registration (@hugetlb) promises hugetlbfs memory:
 * the whole range must be mapped by hugetlb VMAs now, or it is -EINVAL,
 * as for mlx5. What is mapped there later is mirrored at whatever size
 * hmm_range_fault() reports.
 */
static int sodp_umem_vet_range(struct mm_struct *mm, u64 start, u64 end,
			       bool write, bool hugetlb)
{
	VMA_ITERATOR(vmi, mm, start);
	struct vm_area_struct *vma;
	u64 covered = start;
	int ret = 0;

	/* Pairs with mmput() below. */
	if (!mmget_not_zero(mm))
		return -EFAULT;
	if (mmap_read_lock_killable(mm)) {
		ret = -EINTR;
		goto out_put;
	}
	for_each_vma_range(vmi, vma, end) {
		if (sodp_vma_vet(vma, write) == SODP_VMA_REFUSED) {
			ret = -EFAULT;
			break;
		}
		if (hugetlb && (vma->vm_start > covered ||
				!is_vm_hugetlb_page(vma))) {
			ret = -EINVAL;
			break;
		}
		covered = vma->vm_end;
	}
	if (!ret && hugetlb && covered < end)
		ret = -EINVAL;
	mmap_read_unlock(mm);
out_put:
	mmput(mm);
	return ret;
}

/**
 * sodp_umem_get() - mirror a virtual address range of a process
 * @mm: the address space, usually current->mm
 * @start: first byte of the range (ignored for an implicit umem: 0)
 * @length: length in bytes; U64_MAX or at least the size of the user
 *	address space for an implicit umem
 * @access: IB_ACCESS_* flags of the memory region; writes are allowed if
 *	ib_access_writable(@access)
 * @flags: 0 or SODP_UMEM_IMPLICIT (mirror all of @mm, @start must be 0)
 * @stats: the counters of the driver's device (sodp_dev_stats_alloc()), or
 *	NULL; the umem counts there too and holds a reference on them
 *
 * Nothing is faulted, pinned or charged to RLIMIT_MEMLOCK; the mirror table
 * is allocated on first use. The umem holds a reference on @mm
 * (mmgrab), not on its address space: after the process exits, accesses
 * fail with -EFAULT.
 *
 * An explicit range that maps memory sodp refuses (secretmem, VM_IO or
 * VM_PFNMAP, a shadow stack for a writable umem; see sodp_vma_vet()) is
 * refused; unmapped parts are not, and every fault vets its VMA again.
 * IB_ACCESS_HUGETLB with IB_ACCESS_ON_DEMAND asks for a range that
 * hugetlbfs maps completely; an implicit umem cannot have it.
 *
 * Context: process context. May sleep. Takes @mm's mmap_lock.
 * Return: the umem or ERR_PTR(): -EINVAL (bad flags, empty range, range
 * overflowing or leaving the user address space, as ib_umem_get(); a
 * hugetlb registration over other memory),
 * -EFAULT (@mm has no users left, or the range maps memory sodp refuses),
 * -EINTR (killed while waiting for the mmap_lock), -ENOMEM.
 */
struct sodp_umem *sodp_umem_get(struct mm_struct *mm, u64 start, u64 length,
				int access, unsigned int flags,
				struct sodp_dev_stats *stats)
{
	bool hugetlb = (access & IB_ACCESS_HUGETLB) &&
		       (access & IB_ACCESS_ON_DEMAND);
	struct sodp_umem *umem;
	u64 end;
	int ret;

	might_sleep();
	if (!mm || (flags & ~SODP_UMEM_IMPLICIT))
		return ERR_PTR(-EINVAL);

	if (flags & SODP_UMEM_IMPLICIT) {
		/* As ib_umem_odp_alloc_implicit(). */
		if (start || length < mm->task_size || hugetlb)
			return ERR_PTR(-EINVAL);
		end = mm->task_size;
	} else {
		if (!length)
			return ERR_PTR(-EINVAL);
		/* -EINVAL, as ib_umem_get() for the same registration. */
		if (check_add_overflow(start, length, &end) ||
		    end > mm->task_size)
			return ERR_PTR(-EINVAL);
		ret = sodp_umem_vet_range(mm, start, end,
					  ib_access_writable(access), hugetlb);
		if (ret)
			return ERR_PTR(ret);
	}

	umem = kzalloc(sizeof(*umem), GFP_KERNEL);
	if (!umem)
		return ERR_PTR(-ENOMEM);

	umem->mm = mm;
	umem->va_start = start;
	umem->va_end = end;
	umem->flags = flags;
	umem->writable = ib_access_writable(access);
	umem->id = sodp_next_id();
	mutex_init(&umem->fault_mutex);
	spin_lock_init(&umem->lock);
	xa_init(&umem->chunks);
	xa_init(&umem->children);
	umem->reclaim_first = ULONG_MAX;
	INIT_DELAYED_WORK(&umem->reclaim_work, sodp_umem_reclaim_work);

	umem->cnt = alloc_percpu(struct sodp_pcpu_counters);
	if (!umem->cnt) {
		ret = -ENOMEM;
		goto out_free_umem;
	}

	ret = sodp_cache_init(umem);
	if (ret)
		goto out_free_cnt;

	/* Pairs with mmdrop() in sodp_umem_release(). */
	mmgrab(mm);
	if (!(flags & SODP_UMEM_IMPLICIT)) {
		ret = sodp_umem_insert_mirror(umem);
		if (ret)
			goto out_drop_mm;
	}

	/* Pairs with sodp_dev_stats_put() in sodp_umem_release(). */
	sodp_dev_stats_get(stats);
	umem->dev = stats;
	atomic64_inc(&sodp_live_umems);
	sodp_dbg_umem(umem, "[0x%llx, 0x%llx) access 0x%x flags 0x%x\n",
		      umem->va_start, umem->va_end, access, flags);
	return umem;

out_drop_mm:
	mmdrop(mm);
	kfree(umem->cache.hash);
out_free_cnt:
	free_percpu(umem->cnt);
out_free_umem:
	kfree(umem);
	return ERR_PTR(ret);
}
EXPORT_SYMBOL_GPL(sodp_umem_get);

/*
 * Faults in flight. A fault sleeps for as long as the mm makes it: in
 * page_mkwrite on a frozen filesystem, in a FUSE daemon that does not
 * answer. No driver timeout may free a umem under it, so every call that
 * is about to fault enters the umem (sodp_umem_enter()) and leaves it on
 * its way out; sodp_umem_fence() stops new entries and waits for the
 * calls inside.
 *
 *   sodp_umem_enter()          sodp_umem_fence()
 *     users++                    dying = true
 *     smp_mb__after_atomic()     smp_mb()
 *     read dying                 wait until users == 0
 *
 * Either the entry sees @dying and leaves, or the fence sees it in @users
 * and waits for it.
 */

/**
 * sodp_umem_enter() - start a call that may fault
 * @umem: the umem
 *
 * Context: process context.
 * Return: 0, to be paired with sodp_umem_leave(), or -EFAULT if the umem
 * is being released.
 */
int sodp_umem_enter(struct sodp_umem *umem)
{
	atomic_inc(&umem->users);
	/* Pairs with smp_mb() in sodp_umem_fence(). */
	smp_mb__after_atomic();
	if (READ_ONCE(umem->dying)) {
		sodp_umem_leave(umem);
		return -EFAULT;
	}
	return 0;
}

/**
 * sodp_umem_leave() - end a call that entered the umem
 * @umem: the umem; it may be freed as soon as this returns
 *
 * Context: any.
 */
void sodp_umem_leave(struct sodp_umem *umem)
{
	/*
	 * Fully ordered; wake_up_var() only hashes the address, so a fence
	 * that saw zero and freed the umem meanwhile is no problem.
	 */
	if (atomic_dec_and_test(&umem->users))
		wake_up_var(&umem->users);
}

/**
 * sodp_umem_fence() - fail new faults of a umem and wait for those in flight
 * @umem: the umem, or NULL or an ERR_PTR (then nothing is done)
 *
 * From now on every access or prefetch of @umem that needs a fault fails
 * with -EFAULT (accesses served by the mirror still succeed). Returns when
 * no fault of @umem is in progress, however long the mm keeps the one in
 * flight (the wait cannot be cut short: a fault blocked in the mm cannot
 * be aborted). For a driver that waits for its own references to an MR
 * with a timeout: fence the umem first, so that the references held by
 * faulting callers are dropped promptly. sodp_umem_release() fences
 * itself. Idempotent.
 *
 * Context: process context. May sleep. Not from a call on @umem itself.
 */
void sodp_umem_fence(struct sodp_umem *umem)
{
	if (IS_ERR_OR_NULL(umem))
		return;
	might_sleep();

	WRITE_ONCE(umem->dying, true);
	/* Pairs with smp_mb__after_atomic() in sodp_umem_enter(). */
	smp_mb();
	wait_var_event(&umem->users, !atomic_read(&umem->users));
}
EXPORT_SYMBOL_GPL(sodp_umem_fence);

/**
 * sodp_umem_release() - stop mirroring and free a umem
 * @umem: the umem, or NULL or an ERR_PTR (then nothing is done)
 *
 * Fences @umem (sodp_umem_fence()): waits for faults in flight and fails
 * new ones, so a caller that gave up waiting for its own users does not
 * free the umem under a fault. Then removes the interval notifier(s), stops
 * the age and reclaim works, waits for copies still in flight, marks
 * written pages dirty, drops every page reference and frees the mirror
 * table. The caller must have stopped issuing new calls on @umem (as for
 * any object it frees).
 *
 * Context: process context. May sleep. Not from a notifier callback.
 */
void sodp_umem_release(struct sodp_umem *umem)
{
	if (IS_ERR_OR_NULL(umem))
		return;
	might_sleep();

	/* Before the notifiers go: a fault uses them until it leaves. */
	sodp_umem_fence(umem);

	/* While the notifiers run, see "References are dropped" in cache.c */
	sodp_cache_trim(umem, true);
	if (sodp_umem_is_implicit(umem))
		sodp_implicit_destroy(umem);
	else
		mmu_interval_notifier_remove(&umem->mirror.mni);
	/* No callback runs from here on, so nothing requeues the works. */
	cancel_delayed_work_sync(&umem->reclaim_work);
	cancel_delayed_work_sync(&umem->age_work);

	sodp_cache_destroy(umem);
	sodp_table_destroy(umem);
	sodp_dbg_umem(umem, "released\n");
	/* Pairs with mmgrab() in sodp_umem_get(). */
	mmdrop(umem->mm);
	atomic64_dec(&sodp_live_umems);
	/* After the cache dropped its last page: nothing counts any more. */
	sodp_dev_stats_put(umem->dev);
	free_percpu(umem->cnt);
	kfree(umem);
}
EXPORT_SYMBOL_GPL(sodp_umem_release);

static u64 sodp_umem_counter(struct sodp_umem *umem, enum sodp_counter c)
{
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += per_cpu_ptr(umem->cnt, cpu)->c[c];
	return sum;
}

/**
 * sodp_umem_stats() - snapshot of the counters of a umem
 * @umem: the umem
 * @out: filled with the counters
 *
 * Context: process context or softirq. Takes umem->lock.
 */
void sodp_umem_stats(struct sodp_umem *umem, struct sodp_stats *out)
{
	out->faults = sodp_umem_counter(umem, SODP_CNT_FAULTS);
	out->pages_faulted = sodp_umem_counter(umem, SODP_CNT_PAGES_FAULTED);
	out->invalidations = sodp_umem_counter(umem, SODP_CNT_INVALIDATIONS);
	out->pages_invalidated =
		sodp_umem_counter(umem, SODP_CNT_PAGES_INVALIDATED);
	out->prefetches = sodp_umem_counter(umem, SODP_CNT_PREFETCHES);
	out->cache_hits = sodp_umem_counter(umem, SODP_CNT_CACHE_HITS);
	out->cache_misses = sodp_umem_counter(umem, SODP_CNT_CACHE_MISSES);
	out->recalls = sodp_umem_counter(umem, SODP_CNT_RECALLS);
	out->deferrals = sodp_umem_counter(umem, SODP_CNT_DEFERRALS);

	spin_lock_bh(&umem->lock);
	out->pages_mirrored = umem->npages_mirrored;
	out->pages_cached = umem->cache.count;
	spin_unlock_bh(&umem->lock);
}
EXPORT_SYMBOL_GPL(sodp_umem_stats);

/* The per-MR counter names, like mlx5's where the meaning is the same. */
static const struct {
	const char *name;
	size_t offset;
} sodp_stat_names[] = {
	{ "page_faults", offsetof(struct sodp_stats, faults) },
	{ "pages_faulted", offsetof(struct sodp_stats, pages_faulted) },
	{ "page_invalidations", offsetof(struct sodp_stats, invalidations) },
	{ "pages_invalidated", offsetof(struct sodp_stats, pages_invalidated) },
	{ "page_prefetch", offsetof(struct sodp_stats, prefetches) },
	{ "cache_hits", offsetof(struct sodp_stats, cache_hits) },
	{ "cache_misses", offsetof(struct sodp_stats, cache_misses) },
	{ "cache_recalls", offsetof(struct sodp_stats, recalls) },
	{ "deferrals", offsetof(struct sodp_stats, deferrals) },
	{ "pages_mirrored", offsetof(struct sodp_stats, pages_mirrored) },
	{ "pages_cached", offsetof(struct sodp_stats, pages_cached) },
};

/**
 * sodp_umem_fill_stat_entry() - put the counters of a umem in a netlink dump
 * @umem: the umem
 * @msg: the message a driver's fill_stat_mr_entry() is building
 *
 * Adds an RDMA_NLDEV_ATTR_STAT_HWCOUNTERS table with every counter of
 * struct sodp_stats, so that "rdma statistic mr" shows the same names for
 * every driver.
 *
 * Context: process context (netlink dump). Takes umem->lock.
 * Return: 0, or -EMSGSIZE when the message is full.
 */
int sodp_umem_fill_stat_entry(struct sodp_umem *umem, struct sk_buff *msg)
{
	struct nlattr *table;
	struct sodp_stats st;
	unsigned int i;

	sodp_umem_stats(umem, &st);

	table = nla_nest_start(msg, RDMA_NLDEV_ATTR_STAT_HWCOUNTERS);
	if (!table)
		return -EMSGSIZE;
	for (i = 0; i < ARRAY_SIZE(sodp_stat_names); i++) {
		u64 *v = (void *)&st + sodp_stat_names[i].offset;

		if (rdma_nl_stat_hwcounter_entry(msg, sodp_stat_names[i].name,
						 *v))
			goto out_cancel;
	}
	nla_nest_end(msg, table);
	return 0;

out_cancel:
	nla_nest_cancel(msg, table);
	return -EMSGSIZE;
}
EXPORT_SYMBOL_GPL(sodp_umem_fill_stat_entry);

/**
 * sodp_umem_count_deferral() - count an access the driver had to defer
 * @umem: the umem
 *
 * For drivers that got -EAGAIN with SODP_NOFAULT and moved the access to
 * sleepable context (siw receive).
 *
 * Context: any.
 */
void sodp_umem_count_deferral(struct sodp_umem *umem)
{
	sodp_count(umem, SODP_CNT_DEFERRALS, 1);
	trace_sodp_deferral(umem->id);
}
EXPORT_SYMBOL_GPL(sodp_umem_count_deferral);

/**
 * sodp_umem_start() - first byte covered by a umem
 * @umem: the umem
 *
 * Context: any.
 * Return: the start given to sodp_umem_get() (0 for an implicit umem).
 */
u64 sodp_umem_start(struct sodp_umem *umem)
{
	return umem->va_start;
}
EXPORT_SYMBOL_GPL(sodp_umem_start);

/**
 * sodp_umem_length() - number of bytes covered by a umem
 * @umem: the umem
 *
 * Context: any.
 * Return: the length given to sodp_umem_get(), or the size of the user
 * address space for an implicit umem.
 */
u64 sodp_umem_length(struct sodp_umem *umem)
{
	return umem->va_end - umem->va_start;
}
EXPORT_SYMBOL_GPL(sodp_umem_length);
