import Foundation
import Testing
@testable import LetheTensor

@Suite struct OptimizerTests {
    func param(_ values: [Double], grad: [Double]) -> Tensor<Double> {
        let p = Tensor<Double>(values, shape: [values.count], requiresGrad: true)
        (p * Tensor(grad, shape: [grad.count])).sum().backward()
        return p
    }

    @Test func adamMatchesTheHandComputedUpdate() {
        let p = param([1.0, -2.0], grad: [0.5, -0.1])
        var adam = Adam([p], lr: 0.1, betas: (0.9, 0.99), eps: 1e-8)
        adam.step()
        // Step 1: m = 0.1 g, v = 0.01 g^2, m_hat = g, v_hat = g^2: p -= lr * g / (|g| + eps).
        #expect(abs(p.storage[0] - (1.0 - 0.1 * 0.5 / (0.5 + 1e-8))) < 1e-12)
        #expect(abs(p.storage[1] - (-2.0 + 0.1 * 0.1 / (0.1 + 1e-8))) < 1e-12)
        adam.step()  // the same gradient again: m_hat = g, v_hat = g^2 once more
        #expect(abs(p.storage[0] - (1.0 - 2 * 0.1 * 0.5 / (0.5 + 1e-8))) < 1e-9)
        #expect(adam.stepCount == 2)
    }

    @Test func adamWDecaysDecoupledAndAdamCouplesDecay() {
        let a = param([2.0], grad: [0.0])
        var adamW = Adam.adamW([a], lr: 0.1, weightDecay: 0.5)
        adamW.step()
        #expect(abs(a.storage[0] - 2.0 * (1 - 0.1 * 0.5)) < 1e-12, "zero gradient: only the decoupled decay moves p")
        let b = param([2.0], grad: [0.0])
        var adam = Adam([b], lr: 0.1, weightDecay: 0.5)
        adam.step()
        // Coupled: g = 0.5 * 2 = 1, so the first step moves p by lr.
        #expect(abs(b.storage[0] - (2.0 - 0.1 * 1 / (1 + 1e-8))) < 1e-12)
    }

    @Test func sgdMomentumAndNesterovFollowPyTorch() {
        let p = param([1.0], grad: [1.0])
        var sgd = SGD([p], lr: 0.1, momentum: 0.9)
        sgd.step()  // buf = 1: p = 0.9
        sgd.step()  // buf = 1.9: p = 0.71
        #expect(abs(p.storage[0] - 0.71) < 1e-12)
        let q = param([1.0], grad: [1.0])
        var nesterov = SGD([q], lr: 0.1, momentum: 0.9, weightDecay: 0.1, nesterov: true)
        nesterov.step()  // d = 1 + 0.1 = 1.1, buf = 1.1, d = 1.1 + 0.99 = 2.09
        #expect(abs(q.storage[0] - (1 - 0.209)) < 1e-12)
    }

    /// An optimiser rebuilt from another's saved state takes exactly the steps the other would.
    @Test func aRestoredOptimizerContinuesBitForBit() throws {
        func run(_ make: ([Tensor<Double>]) -> any Optimizer<Double>, splitAt: Int?) throws -> [Double] {
            let p = Tensor<Double>([1.0, -2.0, 0.5], shape: [3], requiresGrad: true)
            var opt = make([p])
            for k in 0..<6 {
                if k == splitAt {
                    let saved = opt.state
                    var fresh = make([p])
                    try fresh.load(saved)
                    #expect(fresh.state == saved)
                    opt = fresh
                }
                p.zeroGrad()
                (p * p * Tensor([Double(k) + 1, -1, 0.25], shape: [3])).sum().backward()
                opt.step()
            }
            return p.storage
        }
        let makers: [([Tensor<Double>]) -> any Optimizer<Double>] = [
            { Adam($0, lr: 0.1, weightDecay: 0.01) }, { Adam.adamW($0, lr: 0.05) },
            { SGD($0, lr: 0.1, momentum: 0.9, nesterov: true) }, { SGD($0, lr: 0.1) },
        ]
        for make in makers {
            let whole = try run(make, splitAt: nil)
            for k in [1, 3, 5] { #expect(try run(make, splitAt: k) == whole) }
        }
        // A state that does not fit is refused.
        var adam = Adam([Tensor<Double>([1], shape: [1])], lr: 0.1)
        #expect(throws: OptimizerState<Double>.Mismatch.self) {
            try adam.load(OptimizerState(steps: 1, buffers: ["0.exp_avg": [0, 0], "0.exp_avg_sq": [0, 0]]))
        }
    }

    /// A Philox stream restored from its state draws what the original draws next, mid-block and
    /// with a spare normal pending.
    @Test func aRestoredRandomStreamDrawsTheSameNumbers() throws {
        var rng = Philox(seed: 42).split("resume")
        _ = rng.next()
        _ = rng.normal()  // leaves a spare normal
        var copy = try #require(Philox(state: rng.state))
        let encoded = try JSONEncoder().encode(rng)
        var decoded = try JSONDecoder().decode(Philox.self, from: encoded)
        for _ in 0..<9 {
            let x = rng.normal()
            #expect(copy.normal() == x)
            #expect(decoded.normal() == x)
            #expect(copy.next() == decoded.next())
            _ = rng.next()
        }
        #expect(Philox(state: .init(words: [1, 2, 3], spareNormal: nil)) == nil)
    }

    @Test func clippingScalesToTheMaximumNorm() {
        let a = param([0, 0], grad: [3, 0])
        let b = param([0], grad: [4])
        let norm = clipGradNorm([a, b], maxNorm: 1)
        #expect(norm == 5)
        #expect(abs(a.grad![0] - 3 / (5 + 1e-6)) < 1e-12)
        #expect(abs(b.grad![0] - 4 / (5 + 1e-6)) < 1e-12)
        let c = param([0], grad: [0.5])
        clipGradNorm([c], maxNorm: 1)
        #expect(c.grad == [0.5])
    }

    @Test func scheduleWarmsUpThenFollowsTheCosine() {
        let s = LRSchedule(kind: .cosine, baseLR: 1, warmupSteps: 4, totalSteps: 14, minLR: 0.1)
        #expect(s.rate(at: 0) == 0.25)
        #expect(s.rate(at: 3) == 1)
        #expect(abs(s.rate(at: 4) - 1) < 1e-12)
        #expect(abs(s.rate(at: 13) - 0.1) < 1e-12)
        #expect(abs(s.rate(at: 8) - (0.1 + 0.9 * 0.5 * (1 + cos(Double.pi * 4 / 9)))) < 1e-12)
        #expect(LRSchedule(kind: .constant, baseLR: 0.3, totalSteps: 5).rate(at: 4) == 0.3)
    }
}

@Suite struct PhiloxTests {
    @Test func streamsAreReproducibleAndIndependent() {
        var a = Philox(seed: 5)
        var b = Philox(seed: 5)
        #expect((0..<10).map { _ in a.next() } == (0..<10).map { _ in b.next() })
        var x = Philox(seed: 5).split("init")
        var y = Philox(seed: 5).split("init")
        var z = Philox(seed: 5).split("noise")
        let xs = (0..<4).map { _ in x.next() }
        #expect(xs == (0..<4).map { _ in y.next() })
        #expect(xs != (0..<4).map { _ in z.next() })
    }

    @Test func philoxMatchesTheReferenceKnownAnswer() {
        // Random123 known-answer test for philox4x32-10 with counter and key all zero.
        let r = Philox.rounds((0, 0, 0, 0), key: (0, 0))
        #expect([r.0, r.1, r.2, r.3] == [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
    }

    @Test func normalsHaveUnitMomentsAndPermutationsArePermutations() {
        var rng = Philox(seed: 11)
        let xs = (0..<20000).map { _ in rng.normal() }
        let mean = xs.reduce(0, +) / Double(xs.count)
        let variance = xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(xs.count)
        #expect(abs(mean) < 0.03)
        #expect(abs(variance - 1) < 0.04)
        let p = rng.permutation(50)
        #expect(p.sorted() == Array(0..<50))
        #expect(p != Array(0..<50))
        #expect((0..<1000).allSatisfy { _ in (0..<7).contains(rng.int(below: 7)) })
    }
}

/// The start-up check of the BLAS kernel: the kernel in use passes; products that are wrong, even in
/// one element or by one term, are caught with the shape and element named.
@Suite struct BLASSelfCheckTests {
    @Test func theKernelInUsePassesAndWrongProductsAreCaught() throws {
        // The numeric core is held while its settings are changed: a strict-mode test training beside
        // this one had been switched to fast mode halfway (a rare failure of
        // strictModeIsBitwiseIdenticalAcrossThreadCounts).
        try Numerics.exclusively {
            Numerics.configure(threads: 2, mode: .fast)
            defer { Numerics.configure(threads: 1, mode: .fast) }
            try checkTheKernelInUse()
        }
    }

    func checkTheKernelInUse() throws {
        #expect(BLASSelfCheck.check(serial: true, gemm: BLASSelfCheck.openBLAS) == nil)
        #expect(BLASSelfCheck.check(serial: false, gemm: BLASSelfCheck.openBLAS) == nil)
        try BLASSelfCheck.verify()
        // A kernel that drops the last term of every sum (a mis-handled tail of the k loop).
        let droppedTail: BLASSelfCheck.Gemm = { ta, tb, m, n, k, a, b in
            var c = [Float](repeating: 0, count: m * n)
            for i in 0..<m {
                for j in 0..<n {
                    for p in 0..<(k - 1) {
                        c[i * n + j] += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j])
                    }
                }
            }
            return c
        }
        let problem = try #require(BLASSelfCheck.check(serial: true, gemm: droppedTail))
        #expect(problem.contains("AB of 64x64 by 64x64: element (0, 0)"), "\(problem)")
        // One wrong element of a transposed product is enough.
        let oneWrong: BLASSelfCheck.Gemm = { ta, tb, m, n, k, a, b in
            var c = BLASSelfCheck.openBLAS(ta, tb, m, n, k, a, b)
            if ta && tb && m == 257 { c[c.count - 1] += 1 }
            return c
        }
        #expect(
            BLASSelfCheck.check(serial: true, gemm: oneWrong)?.contains("AᵀBᵀ of 257x513 by 513x8: element (256, 7)")
                == true)
    }
}
