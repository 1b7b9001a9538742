import Foundation
import LetheTensor

/// The DDPM process the UNet learns to reverse, beside the network it drives: the beta schedule and
/// its cumulative products alpha-bar, the forward draw q(x_t | x_0), and the reverse samplers
/// (ancestral DDPM over every timestep, or deterministic DDIM, eta = 0, over a subset).
public struct DiffusionProcess: Sendable {
    /// How the betas follow from the spec's `beta_start`, `beta_end` and T.
    public enum Schedule: String, Sendable, CaseIterable {
        /// beta_start .. beta_end as given, linearly over T steps (DDPM's, meant for T = 1000).
        case linear
        /// DDPM's linear schedule rescaled to T steps: beta_start and beta_end are the values for
        /// 1000 steps and are multiplied by 1000 / T (Nichol & Dhariwal's `get_named_beta_schedule`),
        /// so x_T is pure noise for any T.
        case scaledLinear = "scaled_linear"
        /// Nichol & Dhariwal's cosine schedule, s = 0.008, betas clipped at 0.999 (beta_start and
        /// beta_end unused).
        case cosine
    }

    /// The largest alpha-bar_T a shipped or user schedule may leave: sampling starts from pure noise,
    /// so x_T must be (almost) pure noise too.
    public static let maximumFinalAlphaBar = 1e-3

    public enum Sampler: Sendable, Equatable {
        /// Ancestral sampling through every timestep.
        case ddpm
        /// Deterministic DDIM (eta = 0) over `steps` evenly spaced timesteps.
        case ddim(steps: Int)
    }

    /// alpha-bar_t = prod_{s <= t} (1 - beta_s), t = 0 ..< timesteps.
    public let alphaBar: [Double]

    /// The schedule's betas over `timesteps` steps.
    public init(timesteps: Int, betaStart: Double, betaEnd: Double, schedule: Schedule = .linear) {
        alphaBar = Self.betas(timesteps: timesteps, betaStart: betaStart, betaEnd: betaEnd, schedule: schedule)
            .reduce(into: [Double]()) { out, beta in out.append((out.last ?? 1) * (1 - beta)) }
    }

    public init(_ config: DiffusionConfig) {
        self.init(
            timesteps: config.timesteps, betaStart: config.betaStart, betaEnd: config.betaEnd,
            schedule: config.schedule)
    }

    /// beta_t, t = 0 ..< timesteps.
    public static func betas(timesteps: Int, betaStart: Double, betaEnd: Double, schedule: Schedule) -> [Double] {
        let t = Double(timesteps)
        switch schedule {
        case .linear, .scaledLinear:
            let scale = schedule == .scaledLinear ? 1000 / t : 1
            let (a, b) = (betaStart * scale, betaEnd * scale)
            return (0..<timesteps).map { min(0.999, a + (b - a) * Double($0) / Double(max(1, timesteps - 1))) }
        case .cosine:
            func f(_ i: Double) -> Double {
                let c = cos((i / t + 0.008) / 1.008 * Double.pi / 2)
                return c * c
            }
            return (0..<timesteps).map { min(0.999, 1 - f(Double($0 + 1)) / f(Double($0))) }
        }
    }

    /// alpha-bar_T, the share of x_0's variance left in x_T.
    public var finalAlphaBar: Double { alphaBar.last ?? 1 }

    public var timesteps: Int { alphaBar.count }

    /// x_t = sqrt(alpha-bar_t) x_0 + sqrt(1 - alpha-bar_t) eps, one timestep per image.
    public func qSample(_ x0: Tensor<Float>, t: [Int], eps: Tensor<Float>) -> Tensor<Float> {
        x0 * Self.perImage(t.map { alphaBar[$0].squareRoot() }) + eps
            * Self.perImage(t.map { (1 - alphaBar[$0]).squareRoot() })
    }

    /// The timesteps a sampler visits, from the noisiest.
    public func schedule(_ sampler: Sampler) -> [Int] {
        switch sampler {
        case .ddpm: return Array((0..<timesteps).reversed())
        case .ddim(let steps): return (0..<steps).map { timesteps - 1 - $0 * timesteps / steps }
        }
    }

    /// One reverse step from `y` at timestep `t`, given the predicted noise, to timestep `previous`
    /// (-1: the clean image). DDPM draws from the posterior q(y_{t-1} | y_t, y_0) with `rng`.
    public func step(
        _ y: Tensor<Float>, predictedNoise eps: Tensor<Float>, t: Int, previous: Int, sampler: Sampler,
        rng: inout Philox
    ) -> Tensor<Float> {
        let a = alphaBar[t]
        let aPrev = previous >= 0 ? alphaBar[previous] : 1.0
        let x0 = ((y - eps * Float((1 - a).squareRoot())) * Float(1 / a.squareRoot())).clamped(-1, 1)
        switch sampler {
        case .ddpm:
            let beta = 1 - a / aPrev
            let mean =
                x0 * Float(aPrev.squareRoot() * beta / (1 - a)) + y
                * Float((a / aPrev).squareRoot() * (1 - aPrev) / (1 - a))
            let variance = beta * (1 - aPrev) / (1 - a)
            return previous >= 0 ? mean + Tensor<Float>.randn(y.shape, rng: &rng) * Float(variance.squareRoot()) : mean
        case .ddim:
            return x0 * Float(aPrev.squareRoot()) + eps * Float((1 - aPrev).squareRoot())
        }
    }

    /// Per-image coefficients as a (N, 1, 1, 1) tensor.
    static func perImage(_ values: [Double]) -> Tensor<Float> {
        Tensor(values.map(Float.init), shape: [values.count, 1, 1, 1])
    }
}
