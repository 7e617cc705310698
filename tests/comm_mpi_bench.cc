// OpenMPI reference for the collective benchmark (a program, built by hand, not by CMake):
//   mpicxx -O2 tests/comm_mpi_bench.cc -o /tmp/comm_mpi_bench
//   mpirun -np 2 --mca btl tcp,self --allow-run-as-root /tmp/comm_mpi_bench 1M 16M 64M 256M
// Prints MPI_Allreduce(MPI_SUM, float) time and algbw/busbw per size, like commtest phase 3.
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, n = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  for (int a = 1; a < argc; ++a) {
    std::string s = argv[a];
    size_t bytes = std::strtoull(s.c_str(), nullptr, 10);
    if (s.back() == 'K') bytes <<= 10;
    if (s.back() == 'M') bytes <<= 20;
    std::vector<float> x(bytes / 4, 1.0f), y(bytes / 4);
    const int rounds = bytes >= (64u << 20) ? 5 : 20;
    MPI_Allreduce(x.data(), y.data(), static_cast<int>(x.size()), MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    for (int i = 0; i < rounds; ++i) {
      MPI_Allreduce(x.data(), y.data(), static_cast<int>(x.size()), MPI_FLOAT, MPI_SUM,
                    MPI_COMM_WORLD);
    }
    double t = (MPI_Wtime() - t0) / rounds, tmax = 0;
    MPI_Reduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) {
      const double alg = bytes / tmax / 1e9;
      std::printf("mpi %11zu B  %10.1f us  algbw %.3f GB/s  busbw %.3f GB/s\n", bytes, tmax * 1e6,
                  alg, alg * 2.0 * (n - 1) / n);
    }
  }
  MPI_Finalize();
  return 0;
}
