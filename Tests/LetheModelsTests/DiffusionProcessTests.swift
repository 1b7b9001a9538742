import Testing
import LetheTensor
@testable import LetheModels

@Suite struct DiffusionProcessTests {
    /// Three linear betas 0.1, 0.2, 0.3: alpha-bar = 0.9, 0.72, 0.504.
    @Test func alphaBarIsTheProductOfOneMinusBeta() {
        let p = DiffusionProcess(timesteps: 3, betaStart: 0.1, betaEnd: 0.3)
        #expect(p.timesteps == 3)
        for (a, b) in zip(p.alphaBar, [0.9, 0.72, 0.504]) { #expect(abs(a - b) < 1e-12) }
    }

    @Test func qSampleMixesImageAndNoisePerImage() {
        let p = DiffusionProcess(timesteps: 3, betaStart: 0.1, betaEnd: 0.3)
        let x0 = Tensor<Float>([1, 1, 2, 2], shape: [2, 1, 1, 2])
        let eps = Tensor<Float>([1, -1, 0, 1], shape: [2, 1, 1, 2])
        let xt = p.qSample(x0, t: [0, 2], eps: eps).storage
        let (a0, a2) = (Float(0.9), Float(0.504))
        let expected: [Float] = [
            a0.squareRoot() + (1 - a0).squareRoot(), a0.squareRoot() - (1 - a0).squareRoot(),
            2 * a2.squareRoot(), 2 * a2.squareRoot() + (1 - a2).squareRoot(),
        ]
        for (x, e) in zip(xt, expected) { #expect(abs(x - e) < 1e-6) }
    }

    @Test func samplersVisitTheirTimesteps() {
        let p = DiffusionProcess(timesteps: 10, betaStart: 1e-4, betaEnd: 0.02)
        #expect(p.schedule(.ddpm) == Array((0..<10).reversed()))
        #expect(p.schedule(.ddim(steps: 4)) == [9, 7, 4, 2])
    }

    /// With the true noise, the DDIM step to "clean" recovers x_0 exactly (within clamping).
    @Test func aDDIMStepWithTheTrueNoiseRecoversTheImage() {
        let p = DiffusionProcess(timesteps: 10, betaStart: 1e-4, betaEnd: 0.02)
        let x0 = Tensor<Float>([0.5, -0.25, 0.75, 0], shape: [1, 1, 2, 2])
        var rng = Philox(seed: 1)
        let eps = Tensor<Float>.randn([1, 1, 2, 2], rng: &rng)
        let xt = p.qSample(x0, t: [9], eps: eps)
        let back = p.step(xt, predictedNoise: eps, t: 9, previous: -1, sampler: .ddim(steps: 1), rng: &rng)
        for (a, b) in zip(back.storage, x0.storage) { #expect(abs(a - b) < 1e-5) }
    }
}
