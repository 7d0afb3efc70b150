// SPDX-License-Identifier: GPL-2.0
/*
 * Implicit umems mirror the whole user address space. One interval notifier
 * over all of it would make every invalidation in the process collide with
 * every fault, so the umem gets a child notifier per mirror table chunk
 * (2 MiB of VA), created by the first fault or prefetch in its range. All
 * children share the umem's lock, mirror table and cache: a child is only
 * the notifier and its range.
 *
 * A child lives as long as its table chunk has a page mirrored. The fault
 * path frees it (and the chunk) at once when its fault published nothing,
 * so probing holes leaves nothing behind. A child whose pages an
 * invalidation took away (munmap, MADV_DONTNEED, ...) is freed by
 * umem->reclaim_work, since mmu_interval_notifier_remove() may not be
 * called from a callback; the work runs a cache_idle_ms later, so a range
 * that is faulted in again meanwhile keeps its child. Explicit umems
 * reclaim their empty chunks the same way.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/slab.h>

#include "sodp_priv.h"

/**
 * sodp_mirror_get_locked() - the mirror (notifier) covering a page
 * @umem: the umem
 * @pgidx: absolute page number inside the umem
 *
 * An explicit umem has a single mirror. For an implicit umem, creates the
 * child of the chunk of @pgidx if it does not exist yet.
 *
 * Context: process context, holds umem->fault_mutex and a reference on the
 * mm's users (mmget), not mmap_lock. May sleep.
 * Return: the mirror or ERR_PTR(-ENOMEM).
 */
struct sodp_mirror *sodp_mirror_get_locked(struct sodp_umem *umem,
					   unsigned long pgidx)
{
	unsigned long ci = pgidx >> SODP_CHUNK_SHIFT;
	struct sodp_mirror *child;
	unsigned long start, end;
	int ret;

	lockdep_assert_held(&umem->fault_mutex);

	if (!sodp_umem_is_implicit(umem))
		return &umem->mirror;

	child = xa_load(&umem->children, ci);
	if (child)
		return child;

	child = kzalloc(sizeof(*child), GFP_KERNEL);
	if (!child)
		return ERR_PTR(-ENOMEM);
	child->umem = umem;
	start = ci << (SODP_CHUNK_SHIFT + PAGE_SHIFT);
	end = start + (SODP_CHUNK_PAGES << PAGE_SHIFT);
	child->start = max_t(unsigned long, start, umem->va_start);
	child->end = min_t(unsigned long, end, PAGE_ALIGN(umem->va_end));

	ret = mmu_interval_notifier_insert(&child->mni, umem->mm, child->start,
					   child->end - child->start,
					   &sodp_mirror_ops);
	if (ret)
		goto out_free_child;

	ret = xa_insert(&umem->children, ci, child, GFP_KERNEL);
	if (ret)
		goto out_remove_notifier;
	atomic64_inc(&sodp_implicit_children);
	return child;

out_remove_notifier:
	mmu_interval_notifier_remove(&child->mni);
out_free_child:
	kfree(child);
	return ERR_PTR(ret);
}

static void sodp_child_free_locked(struct sodp_umem *umem, unsigned long ci,
				   struct sodp_mirror *child)
{
	lockdep_assert_held(&umem->fault_mutex);

	/*
	 * The caller found the chunk idle and no fault ran since (they hold
	 * fault_mutex), so its range is empty; drop whatever might be left
	 * anyway while the notifier still covers it.
	 */
	sodp_umem_drop_range(umem, child->start >> PAGE_SHIFT,
			     child->end >> PAGE_SHIFT);
	xa_erase(&umem->children, ci);
	/* Sleeps until no callback of the child runs any more. */
	mmu_interval_notifier_remove(&child->mni);
	sodp_table_free_chunk(umem, ci);
	kfree(child);
	atomic64_dec(&sodp_implicit_children);
}

/**
 * sodp_umem_reclaim_locked() - free a chunk that has no page mirrored
 * @umem: the umem
 * @ci: chunk index
 *
 * Frees table chunk @ci, and for an implicit umem its child, if none of
 * its pages is mirrored; does nothing otherwise. The fault path calls it
 * after a fault that published nothing, so that a failed fault leaves no
 * memory behind.
 *
 * Context: process context, holds umem->fault_mutex and no mmap_lock.
 * May sleep (mmu_interval_notifier_remove()).
 */
void sodp_umem_reclaim_locked(struct sodp_umem *umem, unsigned long ci)
{
	struct sodp_mirror *child;

	lockdep_assert_held(&umem->fault_mutex);

	if (!sodp_table_chunk_idle(umem, ci))
		return;
	child = sodp_umem_is_implicit(umem) ?
		xa_load(&umem->children, ci) : NULL;
	if (child)
		sodp_child_free_locked(umem, ci, child);
	else
		sodp_table_free_chunk(umem, ci);
}

/**
 * sodp_umem_reclaim_work() - free the chunks invalidations emptied
 * @work: umem->reclaim_work
 *
 * Context: workqueue (process context).
 */
void sodp_umem_reclaim_work(struct work_struct *work)
{
	struct sodp_umem *umem = container_of(to_delayed_work(work),
					      struct sodp_umem, reclaim_work);
	unsigned long first, end, ci;
	struct sodp_chunk *chunk;

	mutex_lock(&umem->fault_mutex);
	spin_lock_bh(&umem->lock);
	first = umem->reclaim_first;
	end = umem->reclaim_end;
	umem->reclaim_first = ULONG_MAX;
	umem->reclaim_end = 0;
	spin_unlock_bh(&umem->lock);

	if (first < end) {
		/* The erase of the current entry is fine for xa_for_each. */
		xa_for_each_range(&umem->chunks, ci, chunk, first, end - 1) {
			sodp_umem_reclaim_locked(umem, ci);
			cond_resched();
		}
	}
	mutex_unlock(&umem->fault_mutex);
}

/**
 * sodp_implicit_destroy() - remove every child of an implicit umem
 * @umem: the umem being released
 *
 * After it returns no invalidate callback runs for @umem.
 *
 * Context: process context. May sleep.
 */
void sodp_implicit_destroy(struct sodp_umem *umem)
{
	struct sodp_mirror *child;
	unsigned long ci;

	mutex_lock(&umem->fault_mutex);
	xa_for_each(&umem->children, ci, child) {
		xa_erase(&umem->children, ci);
		mmu_interval_notifier_remove(&child->mni);
		kfree(child);
		atomic64_dec(&sodp_implicit_children);
		cond_resched();
	}
	mutex_unlock(&umem->fault_mutex);
	xa_destroy(&umem->children);
}
