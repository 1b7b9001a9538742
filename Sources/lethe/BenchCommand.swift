import ArgumentParser
import Foundation
import LetheTensor

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the tensor core's op families against this machine's sgemm peak.",
        discussion: "Build in release first (`make bench` does). Each op runs forward and backward; GFLOP/s counts the matrix products only. Full training steps of the three reference models join this table when the models land."
    )

    @Option(help: "OpenBLAS threads.")
    var threads: Int = 1

    @Option(help: "Numerics mode: fast (OpenBLAS threads) or strict (bitwise identical for any thread count).")
    var mode: Numerics.Mode = .fast

    @Option(help: "Seconds to spend on each measurement (the best iteration is reported).")
    var seconds: Double = 1.0

    func run() throws {
        Numerics.configure(threads: threads, mode: mode)
        var rng = Philox(seed: 0)
        print("lethe bench: \(threads) thread(s), \(mode) mode, OpenBLAS \(Numerics.blasCore), best of ~\(seconds)s per row")
        let peak = measureSgemmPeak()
        print(String(format: "sgemm 1024^3 peak: %.1f GFLOP/s", peak))
        print("")
        print("op (forward + backward)              shape                          ms/iter   GFLOP/s  % peak")
        func row(_ name: String, _ shape: String, flops: Double, _ body: () -> Void) {
            let t = best(body)
            let gflops = flops / t / 1e9
            let rate = flops > 0 ? String(format: "%8.1f  %5.1f%%", gflops, 100 * gflops / peak) : "       —       —"
            print(name.padding(37) + shape.padding(31) + String(format: "%7.3f  ", t * 1e3) + rate)
        }
        func param(_ s: [Int]) -> Tensor<Float> { Tensor.randn(s, rng: &rng, requiresGrad: true) }

        let x = param([2048, 128]), w = param([512, 128]), b = param([512])
        row("linear", "[2048,128] x [512,128]^T", flops: 3 * 2 * 2048 * 512 * 128) {
            x.linear(w, b).sum().backward()
        }
        let img = param([32, 32, 16, 16]), k = param([64, 32, 3, 3])
        row("conv2d 3x3 pad 1", "[32,32,16,16] * [64,32,3,3]", flops: 3 * 2 * 32 * 64 * 256 * 288) {
            img.conv2d(k, nil, Conv2dGeometry(stride: 1, padding: 1)).sum().backward()
        }
        let q = param([32, 4, 64, 32]), kk = param([32, 4, 64, 32]), v = param([32, 4, 64, 32])
        row("attention", "[32,4,64,32]", flops: 3 * 2 * 2 * 32 * 4 * 64 * 64 * 32) {
            Tensor.attention(q, kk, v).sum().backward()
        }
        let ln = param([2048, 128]), g = param([128]), beta = param([128])
        row("layer norm", "[2048,128]", flops: 0) { ln.layerNorm(g, beta).sum().backward() }
        let sm = param([512, 256])
        row("softmax", "[512,256]", flops: 0) { sm.softmax().square().sum().backward() }
        let gn = param([32, 64, 16, 16]), gw = param([64]), gb = param([64])
        row("group norm (32 groups)", "[32,64,16,16]", flops: 0) { gn.groupNorm(groups: 32, gw, gb).sum().backward() }
        let e = param([32, 64, 32, 32])
        row("gelu", "[32,64,32,32]", flops: 0) { e.gelu().sum().backward() }
        print("")
        print("PyTorch reference: not measured (the reference environment under bench/torch/ is not set up yet).")
    }

    func best(_ body: () -> Void) -> Double {
        body()
        var bestTime = Double.infinity
        let start = Date()
        repeat {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            bestTime = min(bestTime, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        } while Date().timeIntervalSince(start) < seconds
        return bestTime
    }

    /// The peak of OpenBLAS at this thread count (strict mode runs it single-threaded per block).
    func measureSgemmPeak() -> Double {
        BLAS.setThreads(threads)
        defer { Numerics.configure(threads: threads, mode: mode) }
        let n = 1024
        let a = [Float](repeating: 1, count: n * n), b = [Float](repeating: 0.5, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        let t = best {
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    c.withUnsafeMutableBufferPointer { cp in
                        Float.gemm(transA: false, transB: false, m: n, n: n, k: n, alpha: 1, a: ap.baseAddress!, lda: n,
                                   b: bp.baseAddress!, ldb: n, beta: 0, c: cp.baseAddress!, ldc: n)
                    }
                }
            }
        }
        return 2 * Double(n * n * n) / t / 1e9
    }
}

extension Numerics.Mode: ExpressibleByArgument {}
