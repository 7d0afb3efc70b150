// SPDX-License-Identifier: GPL-2.0
/*
 * ibv_advise_mr() for drivers on sodp: the advice and flags, and the
 * synchronous or asynchronous prefetch of a list of ranges. The driver
 * looks up and checks each SGE's MR (taking a reference) and translates
 * it to a umem range; everything else is here. An asynchronous prefetch
 * runs in a work item on sodp_wq that holds the driver's MR references
 * until it is done, so it never outlives an MR, and stops early when the
 * driver says an MR is being destroyed. Every request also holds a
 * reference on the driver module, whose code drops the MR references: a
 * prefetch blocked in a fault (a frozen filesystem) keeps the driver from
 * being unloaded under it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/overflow.h>
#include <linux/slab.h>
#include <linux/workqueue.h>
#include <rdma/ib_user_ioctl_verbs.h>

#include "sodp_priv.h"

/**
 * struct sodp_advise - one ibv_advise_mr() call being served
 * @work: the asynchronous prefetch
 * @ops: how to hold the driver's MRs
 * @flags: sodp_umem_prefetch() flags
 * @sync: IB_UVERBS_ADVISE_MR_FLAG_FLUSH was given
 * @num_sge: entries allocated
 * @nr: entries added
 * @sge: the ranges, each with the MR reference the driver took
 */
struct sodp_advise {
	struct work_struct work;
	const struct sodp_advise_ops *ops;
	unsigned int flags;
	bool sync;
	u32 num_sge;
	u32 nr;
	struct sodp_advise_sge {
		void *mr;
		struct sodp_umem *umem;
		u64 va;
		u32 length;
	} sge[] __counted_by(num_sge);
};

/**
 * sodp_advise_alloc() - start serving an ibv_advise_mr() call
 * @advice: enum ib_uverbs_advise_mr_advice: PREFETCH, PREFETCH_WRITE or
 *	PREFETCH_NO_FAULT
 * @flags: 0 or IB_UVERBS_ADVISE_MR_FLAG_FLUSH (synchronous)
 * @num_sge: number of ranges that sodp_advise_add() will add
 * @ops: how the request holds the driver's MRs
 * @write: set to true if the MRs need local write access (PREFETCH_WRITE)
 *
 * The request holds a reference on @ops->owner until it is freed.
 *
 * Context: process context, may sleep.
 * Return: the request, ERR_PTR(-EOPNOTSUPP) for an unknown advice or flag,
 * ERR_PTR(-ENODEV) if the driver module is being unloaded, or
 * ERR_PTR(-ENOMEM).
 */
struct sodp_advise *sodp_advise_alloc(u32 advice, u32 flags, u32 num_sge,
				      const struct sodp_advise_ops *ops,
				      bool *write)
{
	struct sodp_advise *adv;
	unsigned int pflags;

	switch (advice) {
	case IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH:
		pflags = 0;
		break;
	case IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_WRITE:
		pflags = SODP_PREFETCH_WRITE;
		break;
	case IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT:
		pflags = SODP_PREFETCH_NO_FAULT;
		break;
	default:
		return ERR_PTR(-EOPNOTSUPP);
	}
	if (flags & ~IB_UVERBS_ADVISE_MR_FLAG_FLUSH)
		return ERR_PTR(-EOPNOTSUPP);

	/* Pairs with module_put() in sodp_advise_free(). */
	if (!try_module_get(ops->owner))
		return ERR_PTR(-ENODEV);
	adv = kzalloc(struct_size(adv, sge, num_sge), GFP_KERNEL);
	if (!adv) {
		module_put(ops->owner);
		return ERR_PTR(-ENOMEM);
	}
	adv->num_sge = num_sge;
	adv->ops = ops;
	adv->flags = pflags;
	adv->sync = flags & IB_UVERBS_ADVISE_MR_FLAG_FLUSH;
	*write = pflags & SODP_PREFETCH_WRITE;
	return adv;
}
EXPORT_SYMBOL_GPL(sodp_advise_alloc);

/**
 * sodp_advise_add() - add one range to a request
 * @adv: the request
 * @mr: the driver's MR, referenced by the caller; the request owns the
 *	reference from now on and drops it with ops->put()
 * @umem: the MR's umem
 * @va: first byte, a user virtual address (the driver has checked that
 *	the range lies in the MR)
 * @length: bytes
 *
 * At most @num_sge ranges of sodp_advise_alloc() may be added.
 *
 * Context: any.
 */
void sodp_advise_add(struct sodp_advise *adv, void *mr,
		     struct sodp_umem *umem, u64 va, u32 length)
{
	struct sodp_advise_sge *sge;

	if (WARN_ON_ONCE(adv->nr >= adv->num_sge))
		return;
	sge = &adv->sge[adv->nr++];
	sge->mr = mr;
	sge->umem = umem;
	sge->va = va;
	sge->length = length;
}
EXPORT_SYMBOL_GPL(sodp_advise_add);

static void sodp_advise_free(struct sodp_advise *adv)
{
	struct module *owner = adv->ops->owner;
	u32 i;

	for (i = 0; i < adv->nr; i++)
		adv->ops->put(adv->sge[i].mr);
	kfree(adv);
	/* Last: the driver may be unloaded from here on. */
	module_put(owner);
}

/**
 * sodp_advise_abort() - drop a request that will not be submitted
 * @adv: the request
 *
 * Drops the MR references of the ranges added so far and frees @adv.
 *
 * Context: process context.
 */
void sodp_advise_abort(struct sodp_advise *adv)
{
	sodp_advise_free(adv);
}
EXPORT_SYMBOL_GPL(sodp_advise_abort);

static int sodp_advise_one(struct sodp_advise *adv, struct sodp_advise_sge *sge,
			   bool async)
{
	int err;

	err = sodp_umem_prefetch_until(sge->umem, sge->va, sge->length,
				       adv->flags,
				       async ? adv->ops->dying : NULL, sge->mr);
	/*
	 * An implicit MR spans every iova, but sodp mirrors only the user
	 * address space: outside it is outside the MR, which advise_mr
	 * reports as -EINVAL.
	 */
	return err == -ERANGE ? -EINVAL : err;
}

static void sodp_advise_work(struct work_struct *work)
{
	struct sodp_advise *adv = container_of(work, struct sodp_advise, work);
	u32 i;

	/* Best effort: errors of an asynchronous prefetch are not reported. */
	for (i = 0; i < adv->nr; i++)
		sodp_advise_one(adv, &adv->sge[i], true);
	sodp_advise_free(adv);
}

/**
 * sodp_advise_submit() - prefetch the ranges of a request
 * @adv: the request, consumed
 *
 * With IB_UVERBS_ADVISE_MR_FLAG_FLUSH the ranges are prefetched before
 * this returns, stopping at the first error. Without it a work item does
 * it and reports nothing; it holds the MR references until it is done and
 * stops early on an MR for which ops->dying() returns true.
 *
 * Context: process context, may sleep.
 * Return: 0; with FLUSH the errno of the first failing range: -EINVAL
 * outside the user address space, -EFAULT for memory that cannot be
 * faulted, -ENOMEM, -EBUSY (see sodp_umem_prefetch()).
 */
int sodp_advise_submit(struct sodp_advise *adv)
{
	int err = 0;
	u32 i;

	if (!adv->sync) {
		INIT_WORK(&adv->work, sodp_advise_work);
		queue_work(sodp_wq, &adv->work);
		return 0;
	}
	for (i = 0; i < adv->nr && !err; i++)
		err = sodp_advise_one(adv, &adv->sge[i], false);
	sodp_advise_free(adv);
	return err;
}
EXPORT_SYMBOL_GPL(sodp_advise_submit);
