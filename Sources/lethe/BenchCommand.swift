import ArgumentParser
import Foundation
import LetheSpec
import LetheTensor

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the tensor core's op families and one unlearning step per reference model, against PyTorch.",
        discussion: """
            Build in release first (`make bench` does). Op rows run forward and backward; GFLOP/s counts the \
            matrix products the row executes (Winograd's reduced ones for 3x3 convolutions), against the sgemm \
            peak measured in the same run. Step rows run the paper's \
            objective on the MAE, VQ autoencoder, MAGE and diffusion reference models; pretraining rows one step of \
            each model's own training, evaluation rows a batch of completions (the diffusion model's 100 DDPM \
            steps); when the PyTorch reference \
            environment exists (bench/torch/setup.sh), bench/torch/bench_steps.py times the same work and the \
            ratio PyTorch / Lethe is printed (>= 1: Lethe is at least as fast). The two sides are timed \
            alternately, --rounds times per row, each keeping its best, so that both see the same machine.
            """
    )

    @Option(parsing: .unconditional, help: "Threads (OpenBLAS and Lethe's own loops; PyTorch gets the same).")
    var threads: Int = 1

    @Option(help: "Numerics mode: fast (OpenBLAS threads) or strict (bitwise identical for any thread count).")
    var mode: Numerics.Mode = .fast

    @Option(parsing: .unconditional, help: "Seconds to spend on each measurement (the best iteration is reported).")
    var seconds: Double = 1.0

    @Option(
        parsing: .unconditional,
        help: "Rounds per row: Lethe and PyTorch are timed alternately this many times, each keeping its best.")
    var rounds: Int = 3

    @Option(help: "Python of the PyTorch reference environment.")
    var torchPython = "bench/torch/.venv/bin/python"

    @Flag(help: "Only the full unlearning steps of the reference models.")
    var stepsOnly = false

    @Flag(help: "Only the pretraining steps of the reference models (the whole model, or MAGE's transformer).")
    var pretraining = false

    @Flag(
        help:
            "Only the evaluation's completions of the reference models (completions per second; the diffusion model's 100 DDPM steps)."
    )
    var evaluation = false

    @Option(help: "Only this reference model's step or run (MAE, VQ autoencoder, MAGE or diffusion).")
    var model: String?

    @Flag(
        help:
            "Time every convolution of the reference models path by path (forward, input gradient, weight gradient) beside PyTorch's oneDNN convolutions."
    )
    var convolutions = false

    @Flag(
        help:
            "Time the unlearning steps once per instruction set of Lethe's kernels this CPU runs (portable, AVX2, AVX-512), alternately, with ratios against the widest."
    )
    var kernels = false

    @Flag(
        help:
            "Where the time goes: every matrix product the selected work (the unlearning steps, or --pretraining / --evaluation) runs through OpenBLAS, by shape, with its calls, time and rate per step."
    )
    var products = false

    @Flag(
        help:
            "Time whole short unlearning runs (`lethe run` in its own process) against bench/torch/bench_run.py, with peak memory."
    )
    var endToEnd = false

    @Option(
        parsing: .unconditional,
        help: "Steps of each end-to-end run (default: 20 for MAE, the VQ autoencoder and MAGE, 5 for diffusion)."
    )
    var runSteps: Int?

    /// The reference models, as `--model` names them (case, spaces and punctuation aside:
    /// vq-autoencoder, vq_autoencoder).
    static let models = ["MAE", "VQ autoencoder", "MAGE", "diffusion"]
    static func sameModel(_ a: String, _ b: String) -> Bool {
        a.lowercased().filter(\.isLetter) == b.lowercased().filter(\.isLetter)
    }

    func validate() throws {
        try OptionChecks.atLeast(rounds, 1, name: "--rounds")
        try OptionChecks.positive(seconds, name: "--seconds")
        try OptionChecks.threads(threads)
        if let runSteps { try OptionChecks.atLeast(runSteps, 1, name: "--run-steps") }
        if let model, !Self.models.contains(where: { Self.sameModel($0, model) }) {
            throw ValidationError("--model \(model): no such reference model (\(Self.models.joined(separator: ", ")))")
        }
    }

    func run() throws {
        if endToEnd { return try wholeRuns() }
        Numerics.configure(threads: threads, mode: mode)
        print(
            "lethe bench: \(threads) thread(s), \(mode) mode, OpenBLAS \(Numerics.blasCore), best of ~\(seconds)s per measurement, \(rounds) round(s)"
        )
        print("CPU: \(CPUFacts.summary)")
        print(
            "Lethe kernels: \(Numerics.isa) (this CPU runs \(KernelISA.supported.map(\.rawValue).joined(separator: ", ")); \(KernelISA.environmentVariable) picks one)"
        )
        let check: String
        do {
            try BLASSelfCheck.verify()
            check = "passed"
        } catch {
            check = "FAILED: \(error)"
        }
        print(
            "OpenBLAS kernel \(Numerics.blasCore) (OPENBLAS_CORETYPE \(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "unset: autodetected")); product self-check \(check)"
        )
        // As `useSmallProducts` reads it: unset or empty leaves the default.
        let chosen = ProcessInfo.processInfo.environment[SmallProducts.environmentVariable].flatMap {
            $0.isEmpty ? nil : "\(SmallProducts.environmentVariable)=\($0)"
        }
        print(
            "Small products (m, n, k <= \(SmallProducts.limit)): \(Numerics.smallProducts) (\(chosen ?? "the default for OpenBLAS \(Numerics.blasCore)"); \(SmallProducts.environmentVariable)=openblas|libxsmm picks one)"
        )
        let torch = TorchReference(python: torchPython, threads: threads)
        let peak = measureSgemmPeak()
        if threads > 1 {
            let single = measureSgemmPeak(threads: 1)
            print(
                String(format: "sgemm 1024^3 peak: %.1f GFLOP/s at 1 thread, %.1f at %d threads", single, peak, threads)
            )
        } else {
            print(String(format: "sgemm 1024^3 peak: %.1f GFLOP/s at 1 thread", peak))
        }
        if convolutions {
            convolutionRows(torch: torch)
            return
        }
        if kernels {
            try kernelSetRows(peak: peak)
            return
        }
        if products {
            for set in selectedWork(default: [.steps]) { productRows(set.name, set.work) }
            return
        }
        let everything = !stepsOnly && !pretraining && !evaluation
        if everything {
            opRows(peak: peak, torch: torch)
            print("")
        }
        for (i, set) in selectedWork(default: [.steps, .pretraining, .completions]).enumerated() {
            if i > 0 { print("") }
            workRows(set, peak: peak, torch: torch)
        }
        if let torch {
            print(
                "PyTorch \(torch.version), \(threads) thread(s): the same work, timed alternately with Lethe's (\(rounds) round(s), "
                    + "the best of each side); a ratio >= 1 means Lethe is at least as fast.")
        } else {
            print("PyTorch reference: not measured (bench/torch/setup.sh creates \(torchPython)).")
        }
    }

    /// Lethe's best time (s) of `body` and PyTorch's (ms, when measured) of the same work, over
    /// `rounds` alternating rounds.
    func alternate(_ kind: String, _ name: String, torch: TorchReference?, _ body: () -> Void) -> (
        lethe: Double, torch: Double?
    ) {
        var lethe = Double.infinity
        var reference: Double?
        for _ in 0..<rounds {
            lethe = min(lethe, best(body))
            if let ms = torch?.time(kind, name, seconds: seconds) { reference = min(reference ?? ms, ms) }
        }
        return (lethe, reference)
    }

    func opRows(peak: Double, torch: TorchReference?) {
        var rng = Philox(seed: 0)
        print("")
        print(
            "op (forward + backward)              shape                          ms/iter   GFLOP/s  % peak   PyTorch ms   PyTorch/Lethe"
        )
        func row(_ name: String, _ shape: String, _ body: () -> Void) {
            let before = BLAS.flops
            body()
            let flops = Double(BLAS.flops - before)
            let (t, ms) = alternate("op", name, torch: torch, body)
            let gflops = flops / t / 1e9
            let rate = flops > 0 ? String(format: "%8.1f  %5.1f%%", gflops, 100 * gflops / peak) : "       —       —"
            let reference =
                ms.map { String(format: "   %10.3f   %13.2f", $0, $0 / (t * 1e3)) } ?? "            —               —"
            print(name.padding(37) + shape.padding(31) + String(format: "%7.3f  ", t * 1e3) + rate + reference)
        }
        func param(_ s: [Int]) -> Tensor<Float> { Tensor.randn(s, rng: &rng, requiresGrad: true) }

        let x = param([2048, 128])
        let w = param([512, 128])
        let b = param([512])
        row("linear", "[2048,128] x [512,128]^T") { x.linear(w, b).sum().backward() }
        let img = param([32, 32, 16, 16])
        let k = param([64, 32, 3, 3])
        row("conv2d 3x3 pad 1", "[32,32,16,16] * [64,32,3,3]") {
            img.conv2d(k, nil, Conv2dGeometry(stride: 1, padding: 1)).sum().backward()
        }
        let q = param([32, 4, 64, 32])
        let kk = param([32, 4, 64, 32])
        let v = param([32, 4, 64, 32])
        row("attention", "[32,4,64,32]") { Tensor.attention(q, kk, v).sum().backward() }
        let qkv = param([32, 64, 384])
        row("self-attention from qkv", "[32,64,3x128], 4 heads") {
            Tensor.selfAttention(qkv: qkv, heads: 4).sum().backward()
        }
        let ln = param([2048, 128])
        let g = param([128])
        let beta = param([128])
        row("layer norm", "[2048,128]") { ln.layerNorm(g, beta).sum().backward() }
        let sm = param([512, 256])
        row("softmax", "[512,256]") { sm.softmax().square().sum().backward() }
        let gn = param([32, 64, 16, 16])
        let gw = param([64])
        let gb = param([64])
        row("group norm (32 groups)", "[32,64,16,16]") { gn.groupNorm(groups: 32, gw, gb).sum().backward() }
        let e = param([32, 64, 32, 32])
        row("gelu", "[32,64,32,32]") { e.gelu().sum().backward() }
    }

    /// A kind of work the reference models do, as the bench times it.
    struct WorkSet {
        /// What a row is, for the tables' headings.
        var name: String
        var heading: String
        /// The request kind of bench_steps.py's server.
        var kind: String
        var work: [(name: String, make: () -> ReferenceSteps.Step)]
        /// Whether each side's images per second are printed too.
        var completions = false

        static var steps: WorkSet {
            WorkSet(
                name: "unlearning step", heading: "unlearning step (batch 32+32, Adam)", kind: "step",
                work: ReferenceSteps.all)
        }
        static var pretraining: WorkSet {
            WorkSet(
                name: "pretraining step", heading: "pretraining step (batch 32, Adam)", kind: "pretrain",
                work: ReferenceSteps.pretraining)
        }
        static var completions: WorkSet {
            WorkSet(
                name: "completions", heading: "completions (batch 32; DDPM batch 8)", kind: "complete",
                work: ReferenceSteps.completions, completions: true)
        }
    }

    /// The kinds of work --steps-only, --pretraining and --evaluation select, in that order; `all`
    /// when none is given.
    func selectedWork(default all: [WorkSet]) -> [WorkSet] {
        let chosen = [(stepsOnly, WorkSet.steps), (pretraining, .pretraining), (evaluation, .completions)]
            .filter(\.0).map(\.1)
        return chosen.isEmpty ? all : chosen
    }

    /// One piece of work per reference model (an unlearning step, a pretraining step, a batch of
    /// completions), beside PyTorch's time for the same work. GFLOP/s counts the products the work
    /// actually executes (`BLAS.flops`: the gemms, with Winograd's reduced products rather than the
    /// convolution sum's count, and the multiply-adds of the direct convolution kernels), against the
    /// sgemm peak. For completions, each side's images per second too.
    func workRows(_ set: WorkSet, peak: Double, torch: TorchReference?) {
        let (kind, completions) = (set.kind, set.completions)
        print(
            set.heading.padding(37) + "parameters   Lethe ms   GFLOP/s  % peak   PyTorch ms   PyTorch/Lethe"
                + (completions ? "   Lethe img/s   PyTorch img/s" : ""))
        for (name, make) in set.work {
            if let model, !Self.sameModel(model, name) { continue }
            let step = make()
            step.run()
            let before = BLAS.flops
            step.run()
            let flops = Double(BLAS.flops - before)
            let (elapsed, reference) = alternate(kind, step.name, torch: torch, step.run)
            let t = elapsed * 1e3
            let rate = flops / elapsed / 1e9
            var line =
                step.name.padding(37) + String(step.parameters).padding(13)
                + String(format: "%8.1f  %8.1f  %5.1f%%", t, rate, 100 * rate / peak)
            if let reference {
                line += String(format: "   %10.1f   %13.2f", reference, reference / t)
            } else {
                line += "            —               —"
            }
            if completions {
                line += String(format: "   %11.1f", Double(step.images) / elapsed)
                line +=
                    reference.map { String(format: "   %13.1f", Double(step.images) / ($0 / 1e3)) }
                    ?? "               —"
            }
            print(line)
        }
    }

    /// The products of each piece of work by shape (`BLAS.recordingProducts`, over as many runs as fit
    /// in --seconds after a warm-up), the costliest first, with the share of the step outside them.
    func productRows(_ title: String, _ work: [(name: String, make: () -> ReferenceSteps.Step)]) {
        for (name, make) in work {
            if let model, !Self.sameModel(model, name) { continue }
            let step = make()
            step.run()
            var runs = 0
            let start = DispatchTime.now().uptimeNanoseconds
            let shapes = BLAS.recordingProducts {
                repeat {
                    step.run()
                    runs += 1
                } while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds
            }
            let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(runs)
            let inProducts = shapes.values.reduce(0) { $0 + $1.seconds } / Double(runs)
            print("")
            print(
                String(
                    format:
                        "%@ %@: %.1f ms a step (mean of %d), %.1f ms in OpenBLAS products (%.0f%%, summed over threads)",
                    title, step.name, wall * 1e3, runs, inProducts * 1e3, 100 * inProducts / wall))
            print("product (m x n x k, A B)        calls/step    ms/step   % of step   GFLOP/s")
            for (shape, time) in shapes.sorted(by: { $0.value.seconds > $1.value.seconds }) {
                let share = time.seconds / Double(runs) / wall
                if share < 0.005 { continue }
                print(
                    shape.description.padding(32)
                        + String(
                            format: "%10.0f  %9.2f   %8.1f%%  %8.1f", Double(time.calls) / Double(runs),
                            time.seconds / Double(runs) * 1e3, 100 * share,
                            Double(shape.flops * time.calls) / time.seconds / 1e9))
            }
        }
        print("")
        print("Shapes under 0.5% of a step left out. A row-major product C = op(A) op(B), A (m x k), B (k x n).")
    }

    /// Every reference step timed in each instruction set of the kernels this CPU runs, the sets
    /// taking turns within each round; the ratio of each narrower set's time to the widest's.
    func kernelSetRows(peak: Double) throws {
        let sets = KernelISA.supported
        let widest = sets.last!
        let before = Numerics.isa
        defer { try? Numerics.use(isa: before) }
        var header = "unlearning step (batch 32+32, Adam)  "
        for isa in sets { header += "\(isa) ms".leftPadded(13) }
        for isa in sets.dropLast() { header += "\(isa)/\(widest)".leftPadded(17) }
        print(header)
        for (name, make) in ReferenceSteps.all {
            if let model, !Self.sameModel(model, name) { continue }
            let step = make()
            var times = [Double](repeating: .infinity, count: sets.count)
            for _ in 0..<rounds {
                for (i, isa) in sets.enumerated() {
                    try Numerics.use(isa: isa)
                    times[i] = min(times[i], best(step.run))
                }
            }
            var line = step.name.padding(37)
            for t in times { line += String(format: "%13.1f", t * 1e3) }
            for t in times.dropLast() { line += String(format: "%17.2f", t / times.last!) }
            print(line)
        }
        print(
            "Each set's best over \(rounds) round(s), the sets in turn within a round; OpenBLAS (\(Numerics.blasCore)) is the same for all. A ratio > 1: the widest set is faster."
        )
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

    /// OpenBLAS's peak at this thread count, or at `count` (strict mode runs it single-threaded per block).
    func measureSgemmPeak(threads count: Int? = nil) -> Double {
        Numerics.configure(threads: count ?? threads, mode: .fast)  // the peak is OpenBLAS's own, multi-threaded
        defer { Numerics.configure(threads: threads, mode: mode) }
        let n = 1024
        let a = [Float](repeating: 1, count: n * n)
        let b = [Float](repeating: 0.5, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        let t = best {
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    c.withUnsafeMutableBufferPointer { cp in
                        Float.gemm(
                            transA: false, transB: false, m: n, n: n, k: n, alpha: 1, a: ap.baseAddress!, lda: n,
                            b: bp.baseAddress!, ldb: n, beta: 0, c: cp.baseAddress!, ldc: n)
                    }
                }
            }
        }
        return 2 * Double(n * n * n) / t / 1e9
    }
}

extension Numerics.Mode: ExpressibleByArgument {}

/// The CPU as `lethe bench` reports it: name, vendor family and model, and its widest vector extension.
enum CPUFacts {

    static var summary: String {
        let flags = Set((CPUInfo.field("flags") ?? "").split(separator: " ").map(String.init))
        let vector = flags.contains("avx512f") ? "AVX-512" : flags.contains("avx2") ? "AVX2" : "no AVX2"
        let family = Int(CPUInfo.field("cpu family") ?? "")
        let vendor = CPUInfo.field("vendor_id") ?? "?"
        let model = Int(CPUInfo.field("model") ?? "")
        let generation = CPUInfo.generation(vendor: vendor, family: family, model: model).map { ", \($0)" } ?? ""
        return
            "\(CPUInfo.field("model name") ?? "unknown"), \(vendor) family \(family.map(String.init) ?? "?") model \(CPUInfo.field("model") ?? "?")\(generation), \(vector)"
    }
}
