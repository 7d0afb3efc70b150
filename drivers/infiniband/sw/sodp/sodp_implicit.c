// SPDX-License-Identifier: GPL-2.0
/*
 * Implicit umems mirror the whole user address space. One interval notifier
 * over all of it would make every invalidation in the process collide with
 * every fault, so the umem gets a child notifier per mirror table chunk
 * (2 MiB of VA), created by the first fault or prefetch in its range. All
 * children share the umem's lock, mirror table and cache: a child is only
 * the notifier and its range.
 *
 * A child whose whole range is unmapped (MMU_NOTIFY_UNMAP) is marked by
 * the invalidate callback and freed, with its table chunk, by a work item:
 * mmu_interval_notifier_remove() may not be called from a callback. A fault
 * in its range before the work runs revives it.
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
	 * No fault ran since the child was found unmapped (they hold
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
 * sodp_implicit_reclaim_work() - free the children whose range is unmapped
 * @work: umem->reclaim_work
 *
 * Context: workqueue (process context).
 */
void sodp_implicit_reclaim_work(struct work_struct *work)
{
	struct sodp_umem *umem = container_of(work, struct sodp_umem,
					      reclaim_work);
	struct sodp_mirror *child;
	unsigned long ci;
	bool unmapped;

	mutex_lock(&umem->fault_mutex);
	xa_for_each(&umem->children, ci, child) {
		spin_lock_bh(&umem->lock);
		unmapped = child->unmapped;
		spin_unlock_bh(&umem->lock);
		if (unmapped)
			sodp_child_free_locked(umem, ci, child);
		cond_resched();
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
