# SPDX-License-Identifier: GPL-2.0
#
# sodp: software On-Demand Paging for rxe and siw.
#
#   make            build sodp.ko, rdma_rxe.ko, siw.ko and the selftests
#   make demo       build, boot a guest, ODP/FS-DAX on rxe0/siw0 vs. stock
#   make check      build, style checks, selftests on rxe0 and siw0 in a guest
#   make check-debug the selftests and fault injection under a KASAN/lockdep
#                   kernel built from the same source (cached)
#   make bench      ODP vs pinned vs upstream rxe ODP: CSV, table, plots
#                   in build/bench/<time>/ (a benchmark, not a test)
#   make soak       checksummed soak on rxe0 + siw0 (SODP_SOAK_SECS, default 600)
#   make dkms-install   register sodp, rdma_rxe and siw with DKMS for the
#                   running kernel (or KVER=...) and install them
#   make dkms-uninstall remove them from DKMS (Debian's rdma_rxe is back)
#   make modules | selftests | lint | sparse | clean
#
# Everything installs its own packages (scripts/deps.sh, as root). The kbuild
# tree is staged in build/ (upstream rxe/siw + our series + our files).

BUILD ?= $(CURDIR)/build
export BUILD

all:
	scripts/build.sh all

modules:
	scripts/build.sh modules

selftests:
	scripts/build.sh selftests

demo:
	scripts/demo.sh

check:
	scripts/check.sh

check-debug:
	scripts/check-debug.sh

bench:
	scripts/bench.sh

soak:
	scripts/soak.sh

dkms-install:
	scripts/dkms.sh install $(KVER)

dkms-uninstall:
	scripts/dkms.sh uninstall

lint:
	scripts/lint.sh

sparse:
	scripts/build.sh modules C=2 CF=-Wno-bitwise

clean:
	rm -rf $(BUILD)

.PHONY: all modules selftests demo check check-debug bench soak dkms-install \
	dkms-uninstall lint sparse clean
