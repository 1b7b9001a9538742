import CShims
import Foundation
import Testing
@testable import LetheTensor

@Suite struct ScalarTests {
    @Test func fastFloatErfStaysWithinOneMillionthOfLibm() {
        var worstAbs: Float = 0
        var worstRel: Float = 0
        var x: Float = -6
        while x <= 6 {
            let exact = Float(Foundation.erf(Double(x)))
            let approx = Float.erf(x)
            worstAbs = max(worstAbs, abs(approx - exact))
            if abs(exact) > 1e-30 { worstRel = max(worstRel, abs(approx - exact) / abs(exact)) }
            x += 0.00037
        }
        #expect(worstAbs < 5e-7)
        #expect(worstRel < 1e-6)
        #expect(Float.erf(0) == 0)
        #expect(Float.erf(10) == 1 && Float.erf(-10) == -1)
    }
}

@Suite struct FloatKernelTests {
    /// The vectorised Float kernels, in every instruction set this CPU runs, agree with the generic
    /// Double path, forward and backward.
    @Test(arguments: ["gelu", "silu"], KernelISA.supported)
    func floatActivationKernelsMatchTheDoublePath(name: String, isa: KernelISA) throws {
        try Numerics.with(isa: isa) { activationsMatch(name) }
    }

    func activationsMatch(_ name: String) {
        var rng = Philox(seed: 21)
        let values = (0..<5000).map { _ in 4 * rng.normal() }
        let xf = Tensor<Float>(values.map(Float.init), shape: [5000], requiresGrad: true)
        let xd = Tensor<Double>(values, shape: [5000], requiresGrad: true)
        let weights = (0..<5000).map { _ in rng.normal() }
        let yf = name == "gelu" ? xf.gelu() : xf.silu()
        let yd = name == "gelu" ? xd.gelu() : xd.silu()
        (yf * Tensor(weights.map(Float.init), shape: [5000])).sum().backward()
        (yd * Tensor(weights, shape: [5000])).sum().backward()
        for i in 0..<5000 {
            #expect(abs(Double(yf.storage[i]) - yd.storage[i]) <= 2e-6 * max(1, abs(yd.storage[i])))
            #expect(abs(Double(xf.grad![i]) - xd.grad![i]) <= 2e-6 * max(1, abs(xd.grad![i])))
        }
    }

    /// The nearest-codebook search runs in blocks of rows over the threads: over several blocks (and a
    /// short last one) every code is the nearest by exact distance, the quantised rows are those codes,
    /// and the codes are the same for 1 and 2 threads in both modes.
    @Test func nearestCodebookOverSeveralBlocksFindsTheNearestCodeForAnyThreadCount() {
        var rng = Philox(seed: 5)
        let (rows, codes, width) = (700, 50, 8)
        let z = Tensor<Float>((0..<(rows * width)).map { _ in Float(rng.normal()) }, shape: [rows, width])
        let codebook = Tensor<Float>((0..<(codes * width)).map { _ in Float(rng.normal()) }, shape: [codes, width])
        func search(threads: Int, mode: Numerics.Mode) -> (codes: [Int], quantized: [Float]) {
            Numerics.exclusively {
                Numerics.configure(threads: threads, mode: mode)
                defer { Numerics.configure(threads: 1, mode: .fast) }
                let (q, idx) = z.nearestCodebook(codebook)
                return (idx, q.storage)
            }
        }
        let reference = search(threads: 1, mode: .strict)
        for (threads, mode) in [(2, Numerics.Mode.strict), (1, .fast), (2, .fast)] {
            #expect(search(threads: threads, mode: mode).codes == reference.codes, "\(threads) threads, \(mode)")
        }
        var checked = 0
        for r in 0..<rows {
            let distances = (0..<codes).map { j in
                (0..<width).reduce(0.0) { s, i in
                    let d = Double(z.storage[r * width + i]) - Double(codebook.storage[j * width + i])
                    return s + d * d
                }
            }
            let order = distances.indices.sorted { distances[$0] < distances[$1] }
            let code = reference.codes[r]
            let (row, entry) = ((r * width)..<((r + 1) * width), (code * width)..<((code + 1) * width))
            #expect(Array(reference.quantized[row]) == Array(codebook.storage[entry]))
            // Float distances may swap two codes closer than their rounding; every other row is exact.
            guard distances[order[1]] - distances[order[0]] > 1e-3 else { continue }
            #expect(code == order[0], "row \(r)")
            checked += 1
        }
        #expect(checked > rows * 9 / 10)
    }

    /// Ops with Float-only fast paths (C kernels in every instruction set this CPU runs, fused
    /// attention, contiguous broadcast reductions) agree with the generic Double path, forward and
    /// every input's gradient, on shapes big enough to cross the kernels' vector tails and chunk
    /// boundaries.
    @Test(
        arguments: [
            "layer norm", "layer norm plain", "group norm", "softmax", "self attention",
            "conv 3x3 pad 1", "add per channel", "add bias row", "mul per channel", "sum", "mean squared error",
        ], KernelISA.supported)
    func floatFastPathsMatchTheDoublePath(name: String, isa: KernelISA) throws {
        let (fo, fg) = try Numerics.with(isa: isa) { Self.evaluate(Float.self, name) }
        let (dOut, dGrads) = Self.evaluate(Double.self, name)
        let scale = dOut.map(abs).max() ?? 1
        let outErr = zip(fo, dOut).map { abs($0 - $1) }.max() ?? 0
        #expect(outErr <= 2e-5 * max(1, scale), "\(name) forward: \(outErr)")
        for (i, (f, d)) in zip(fg, dGrads).enumerated() {
            let gScale = d.map(abs).max() ?? 1
            let err = zip(f, d).map { abs($0 - $1) }.max() ?? 0
            #expect(err <= 5e-5 * max(1, gScale), "\(name) gradient of input \(i): \(err)")
        }
    }

    /// The fused self-attention computes exactly what the reshape / permute / attention / transpose
    /// chain it replaces computes (Double, so the comparison is tight).
    @Test func fusedSelfAttentionEqualsTheUnfusedChain() {
        let (out, _) = Self.evaluate(Double.self, "self attention")
        let rows = out.count / 16
        var worst = 0.0
        for r in 0..<rows { for j in 0..<8 { worst = max(worst, abs(out[r * 16 + j] - out[r * 16 + 8 + j])) } }
        #expect(worst < 1e-12, "fused and unfused attention differ by \(worst)")
    }

    /// The op `name` on fixed random inputs in precision S, with the gradients of sum(out * R).
    static func evaluate<S: TensorScalar>(_ type: S.Type, _ name: String) -> (out: [Double], grads: [[Double]]) {
        var rng = Philox(seed: 77)
        func r(_ shape: [Int]) -> Tensor<S> {
            Tensor((0..<shape.reduce(1, *)).map { _ in S(rng.normal()) }, shape: shape, requiresGrad: true)
        }
        let inputs: [Tensor<S>]
        let f: ([Tensor<S>]) -> Tensor<S>
        switch name {
        case "layer norm":
            inputs = [r([37, 130]), r([130]), r([130])]
            f = { $0[0].layerNorm($0[1], $0[2], eps: 1e-6) }
        case "layer norm plain":
            inputs = [r([5, 9, 20])]
            f = { $0[0].layerNorm(nil, nil) }
        case "group norm":
            inputs = [r([3, 12, 7, 5]), r([12]), r([12])]
            f = { $0[0].groupNorm(groups: 4, $0[1], $0[2]) }
        case "softmax":
            inputs = [r([29, 45])]
            f = { ($0[0] * 3).softmax() }
        case "self attention":
            inputs = [r([3, 11, 24])]
            f = { x in
                let (b, n) = (x[0].shape[0], x[0].shape[1])
                let fused = Tensor.selfAttention(qkv: x[0], heads: 2)
                let parts = x[0].reshaped([b, n, 3, 2, 4]).permuted([2, 0, 3, 1, 4])
                let (q, k, v) = (0..<3).map { parts.slice(axis: 0, $0..<($0 + 1)).reshaped([b, 2, n, 4]) }.splat
                let unfused = Tensor.attention(q, k, v).transposed(1, 2).reshaped([b, n, 8])
                return Tensor.concat([fused, unfused], axis: -1)
            }
        case "conv 3x3 pad 1":
            inputs = [r([3, 5, 9, 7]), r([6, 5, 3, 3]), r([6])]
            f = { $0[0].conv2d($0[1], $0[2], Conv2dGeometry(stride: 1, padding: 1)) }
        case "add per channel":
            inputs = [r([4, 6, 5, 5]), r([4, 6, 1, 1])]
            f = { $0[0] + $0[1] - $0[1] * 2 }
        case "add bias row":
            inputs = [r([7, 3, 19]), r([1, 19])]
            f = { $0[0] + $0[1] - $0[1] * 3 }
        case "sum":
            inputs = [r([3, 1001])]
            f = { ($0[0] * $0[0]).sum() }
        case "mean squared error":
            inputs = [r([5, 777]), r([5, 777])]
            f = { $0[0].mseLoss($0[1]) }
        default:
            inputs = [r([4, 6, 5, 5]), r([6, 1, 1])]
            f = { $0[0] * $0[1] }
        }
        let out = f(inputs)
        let weights = Tensor<S>((0..<out.count).map { _ in S(rng.normal()) }, shape: out.shape)
        (out * weights).sum().backward()
        return (out.storage.map { Double($0) }, inputs.map { ($0.grad ?? []).map { Double($0) } })
    }
}

private extension Array {
    /// The first three elements as a tuple.
    var splat: (Element, Element, Element) { (self[0], self[1], self[2]) }
}

/// The vectorised exp behind GELU, SiLU and softmax, held to the README's "about 1 ulp" in every
/// instruction set this CPU runs.
@Suite struct VectorExpTests {
    @Test(arguments: KernelISA.supported)
    func withinTwoUlpOfLibm(isa: KernelISA) throws {
        try Numerics.with(isa: isa) { Self.expWithinTwoUlp() }
    }

    static func expWithinTwoUlp() {
        var worst: Float = 0
        for i in 0...20_000 {
            let x = -87 + Float(i) * (175.0 / 20_000)
            let exact = Foundation.exp(Double(x))
            let got = lethe_vexpf(x)
            let ulp = Float(exact).ulp
            worst = max(worst, Float(abs(Double(got) - exact)) / ulp)
        }
        #expect(worst <= 2, "worst error \(worst) ulp")
        #expect(lethe_vexpf(0) == 1)
    }
}
