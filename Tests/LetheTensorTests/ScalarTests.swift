import Foundation
import Testing
@testable import LetheTensor

@Suite struct ScalarTests {
    @Test func fastFloatErfStaysWithinOneMillionthOfLibm() {
        var worstAbs: Float = 0, worstRel: Float = 0
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
    /// The vectorised Float kernels agree with the generic Double path, forward and backward.
    @Test(arguments: ["gelu", "silu"])
    func floatActivationKernelsMatchTheDoublePath(name: String) {
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
}
