import Testing
@testable import LetheTensor

/// Every op's backward against finite differences, in Double, with broadcast inputs and reuse.
@Suite struct GradientTests {
    typealias T = Tensor<Double>
    let check = GradCheck()

    /// (name, inputs, function) for each op family.
    static func cases() -> [(String, [T], ([T]) -> T)] {
        var rng = Philox(seed: 42)
        func r(_ s: [Int]) -> T { randn(s, &rng) }
        func positive(_ s: [Int]) -> T {
            T((0..<s.reduce(1, *)).map { _ in 0.5 + rng.uniform() }, shape: s, requiresGrad: true)
        }
        return [
            ("add broadcast", [r([3, 1, 4]), r([2, 4])], { $0[0] + $0[1] }),
            ("sub broadcast", [r([2, 3]), r([3])], { $0[0] - $0[1] }),
            ("mul broadcast", [r([2, 3, 4]), r([1, 3, 1])], { $0[0] * $0[1] }),
            ("div broadcast", [r([2, 3]), positive([2, 1])], { $0[0] / $0[1] }),
            ("tensor used twice", [r([3, 4])], { x in x[0] * x[0] + x[0].exp() }),
            ("scalar ops", [r([5])], { ($0[0] * 3 + 2) / 4 - 1 }),
            ("scalar on the left", [r([5])], { 2 - $0[0] + (3 + $0[0]) * (0.5 * $0[0]) }),
            ("exp log sqrt", [positive([6])], { $0[0].exp() + $0[0].log() + $0[0].sqrt() }),
            ("tanh sigmoid square", [r([6])], { $0[0].tanh() + $0[0].sigmoid() * $0[0].square() }),
            ("relu abs", [r([8])], { $0[0].relu() + $0[0].abs() * 0.5 }),
            ("gelu", [r([9])], { $0[0].gelu() }),
            ("silu", [r([9])], { $0[0].silu() }),
            ("clamp", [r([9])], { $0[0].clamped(-0.5, 0.7) }),
            ("sum mean", [r([3, 4])], { $0[0].sum() * 2 + $0[0].mean() }),
            ("sum axis", [r([2, 3, 4])], { $0[0].sum(axis: 1) }),
            ("mean axis keepdims", [r([2, 3, 4])], { $0[0].mean(axis: -1, keepDims: true) * $0[0] }),
            ("matmul shared", [r([2, 3, 4]), r([4, 5])], { $0[0].matmul($0[1]) }),
            ("matmul batched", [r([2, 3, 4]), r([2, 4, 2])], { $0[0].matmul($0[1]) }),
            ("linear", [r([2, 3, 4]), r([5, 4]), r([5])], { $0[0].linear($0[1], $0[2]) }),
            (
                "reshape permute", [r([2, 3, 4])],
                { $0[0].reshaped([6, 4]).reshaped([2, -1, 2]).permuted([2, 0, 1]) }
            ),
            ("transpose", [r([2, 3, 4])], { $0[0].transposed(0, 2) }),
            ("concat", [r([2, 3]), r([2, 2])], { T.concat([$0[0], $0[1], $0[0]], axis: 1) }),
            ("slice", [r([4, 5])], { $0[0].slice(axis: 1, 1..<4) }),
            ("gather repeats", [r([4, 3])], { $0[0].gather(rows: [2, 0, 2, 3]) }),
            ("softmax", [r([3, 5])], { $0[0].softmax() }),
            ("log softmax", [r([3, 5])], { $0[0].logSoftmax() }),
            ("layer norm", [r([3, 6]), r([6]), r([6])], { $0[0].layerNorm($0[1], $0[2]) }),
            ("group norm", [r([2, 4, 3, 3]), r([4]), r([4])], { $0[0].groupNorm(groups: 2, $0[1], $0[2]) }),
            (
                "conv2d stride 2 pad 1", [r([2, 3, 5, 5]), r([4, 3, 3, 3]), r([4])],
                { $0[0].conv2d($0[1], $0[2], Conv2dGeometry(stride: 2, padding: 1)) }
            ),
            ("conv2d 1x1", [r([1, 3, 4, 4]), r([2, 3, 1, 1])], { $0[0].conv2d($0[1]) }),
            ("upsample nearest", [r([1, 2, 3, 3])], { $0[0].upsampleNearest2x() }),
            (
                "attention", [r([1, 2, 4, 3]), r([1, 2, 4, 3]), r([1, 2, 4, 3])], { T.attention($0[0], $0[1], $0[2]) }
            ),
            ("self attention fused", [r([2, 3, 12])], { T.selfAttention(qkv: $0[0], heads: 2) }),
            (
                "conv2d 3x3 pad 1", [r([2, 2, 4, 3]), r([3, 2, 3, 3]), r([3])],
                { $0[0].conv2d($0[1], $0[2], Conv2dGeometry(stride: 1, padding: 1)) }
            ),
            ("add per channel", [r([2, 3, 2, 2]), r([2, 3, 1, 1])], { $0[0] + $0[1] }),
            ("sub bias row", [r([2, 3, 4]), r([1, 4])], { $0[0] - $0[1] }),
            (
                "broadcast on the left", [r([2, 3, 1, 1]), r([2, 3, 2, 2]), r([2])],
                { $0[0] * $0[1] - $0[0] + $0[2] / ($0[1] * $0[1] + 1) }
            ),
            ("embedding", [r([5, 3])], { T.embedding([4, 0, 4, 1, 2, 2], shape: [2, 3], weight: $0[0]) }),
            ("mse loss", [r([3, 4]), r([3, 4])], { $0[0].mseLoss($0[1]) }),
            ("mse loss broadcast", [r([3, 4]), r([4])], { $0[0].mseLoss($0[1]) }),
            ("l1 loss", [r([3, 4]), r([3, 4])], { $0[0].l1Loss($0[1]) }),
            ("cross entropy", [r([4, 5])], { $0[0].crossEntropy([1, 0, 4, 4]) }),
        ]
    }

    @Test func everyOpMatchesFiniteDifferences() {
        var failures: [String] = []
        for (name, inputs, f) in Self.cases() {
            let err = check.maxError(inputs, f)
            if !(err < check.tolerance) { failures.append("\(name): relative error \(err)") }
        }
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func straightThroughQuantiserPassesGradientUnchanged() {
        var rng = Philox(seed: 1)
        let z = randn([4, 3], &rng)
        let codebook = randn([6, 3], &rng, grad: false)
        let (q, idx) = z.nearestCodebook(codebook)
        func distance(_ row: Int, _ code: Int) -> Double {
            var s = 0.0
            for j in 0..<3 {
                let d = z.storage[row * 3 + j] - codebook.storage[code * 3 + j]
                s += d * d
            }
            return s
        }
        for (r, i) in idx.enumerated() {
            let best = (0..<6).min { distance(r, $0) < distance(r, $1) }
            #expect(i == best)
            #expect(Array(q.storage[(r * 3)..<(r * 3 + 3)]) == Array(codebook.storage[(i * 3)..<(i * 3 + 3)]))
        }
        let w = randn([4, 3], &rng, grad: false)
        (q * w).sum().backward()
        #expect(z.grad == w.storage)
    }

    @Test func gradientsAccumulateUntilZeroed() {
        let x = T([1, 2], shape: [2], requiresGrad: true)
        (x * 3).sum().backward()
        (x * 3).sum().backward()
        #expect(x.grad == [6, 6])
        x.zeroGrad()
        (x.square()).sum().backward()
        #expect(x.grad == [2, 4])
    }

    @Test func noGradAndFrozenTensorsRecordNothing() {
        let w = T([1, 2], shape: [2], requiresGrad: true)
        let frozen = T([3, 4], shape: [2])
        let y = GradMode.withoutGrad { w * 2 }
        #expect(!y.requiresGrad)
        (w * frozen).sum().backward()
        #expect(frozen.grad == nil)
        #expect(w.grad == [3, 4])
    }

    /// With 2+ threads in fast mode, linear's backward runs its two products side by side, one per
    /// thread; they must give exactly the gradients of the products run in turn (1 thread).
    @Test func linearBackwardSideBySideMatchesInTurn() {
        func gradients(threads: Int) -> [[Double]] {
            Numerics.exclusively {
                Numerics.configure(threads: threads, mode: .fast)
                defer { Numerics.configure(threads: 1, mode: .fast) }
                var rng = Philox(seed: 3)
                let x = randn([2, 5, 7], &rng)
                let w = randn([4, 7], &rng)
                let b = randn([4], &rng)
                let r = randn([2, 5, 4], &rng, grad: false)
                (x.linear(w, b) * r).sum().backward()
                return [x.grad!, w.grad!, b.grad!]
            }
        }
        let (inTurn, sideBySide) = (gradients(threads: 1), gradients(threads: 2))
        #expect(inTurn == sideBySide)
    }

    @Test func checkerCatchesAWrongBackward() {
        // A deliberately wrong op (gradient off by a factor 2) must fail the check.
        let x = T([0.3, -0.7, 1.1], shape: [3], requiresGrad: true)
        let err = check.maxError([x]) { $0[0].unary({ $0 * $0 }, { x, _ in x }) }
        #expect(err > 0.1)
    }
}
