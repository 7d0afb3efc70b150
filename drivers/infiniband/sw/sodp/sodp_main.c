// SPDX-License-Identifier: GPL-2.0
/*
 * sodp: software On-Demand Paging for the soft-RDMA drivers.
 *
 * Module entry points. The mirror, fault path and pinned fast-path cache
 * live in their own files.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>

static int __init sodp_init(void)
{
	return 0;
}

static void __exit sodp_exit(void)
{
}

module_init(sodp_init);
module_exit(sodp_exit);

MODULE_DESCRIPTION("Software On-Demand Paging for soft-RDMA drivers");
MODULE_LICENSE("GPL");
