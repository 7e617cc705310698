#include "cluster/topology.h"
