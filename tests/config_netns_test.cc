#include <gtest/gtest.h>

#include "netns_cluster.h"
