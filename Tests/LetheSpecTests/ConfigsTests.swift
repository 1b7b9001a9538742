import Foundation
import Testing
@testable import LetheSpec

/// Every shipped config is valid, and a broken copy of any of them fails with located errors.
@Suite struct ConfigsTests {
    static let configs = Repo.runSpecConfigs

    @Test func thereAreConfigsForEveryArchitectureAndMethod() {
        for arch in ["mae", "vq-autoencoder", "mage", "diffusion"] {
            for method in [
                "pretrain", "ours", "ours-proxy", "max-loss", "noisy-label", "retain-label", "random-encoder",
            ] {
                #expect(Self.configs.contains("\(arch)-\(method).yaml"))
            }
        }
        #expect(Self.configs.contains("mage-tokenizer.yaml"))
    }

    @Test(arguments: configs)
    func configIsValid(name: String) throws {
        let plan = try Planner(workingDirectory: NSTemporaryDirectory()).plan(specPath: Repo.path("configs/\(name)"))
        #expect(plan.warnings.isEmpty, "\(plan.warnings)")
        #expect(plan.configHash.count == 64)
    }

    /// Every shipped unlearning config runs at least one epoch of its forget set (Fashion-MNIST has
    /// 6,000 training images per class, or `per_class_limit`).
    @Test(arguments: configs)
    func unlearningCoversAnEpochOfTheForgetSet(name: String) throws {
        let plan = try Planner(workingDirectory: NSTemporaryDirectory()).plan(specPath: Repo.path("configs/\(name)"))
        guard plan.spec.kind == .unlearn, let classes = plan.spec.data.forget?.classes else { return }
        let images = classes.count * min(6000, plan.spec.data.perClassLimit ?? 6000)
        let seen = plan.spec.train.steps * plan.spec.train.forgetBatchSize
        #expect(seen >= images, "\(name): \(seen) forget images seen, the forget set has \(images)")
    }

    /// A mutation of a config's text and what the error must say about it.
    struct Breakage: Sendable, CustomStringConvertible {
        var what: String
        var from: String
        var to: String
        var pointer: String
        var message: String
        var unlearnOnly = false
        var description: String { what }
    }

    static let breakages: [Breakage] = [
        Breakage(
            what: "typo'd key", from: "  architecture:", to: "  architecure:", pointer: "/model/architecure",
            message: "did you mean 'architecture'?"),
        Breakage(
            what: "wrong type", from: "seed: 0", to: "seed: zero", pointer: "/seed",
            message: "expected integer, found string 'zero'"),
        Breakage(
            what: "bad value", from: "ratio: 0.25", to: "ratio: 1.5", pointer: "/task/ratio", message: "must be < 1"),
        Breakage(
            what: "bad enum", from: "mask: center_crop", to: "mask: centre_crop", pointer: "/task/mask",
            message: "did you mean 'center_crop'?"),
        Breakage(what: "syntax error", from: "version: 1", to: "version: [1", pointer: "/", message: "flow sequence"),
        Breakage(
            what: "duplicate key", from: "seed: 0", to: "seed: 0\nseed: 1", pointer: "/seed",
            message: "duplicate key 'seed'"),
        Breakage(
            what: "overlapping splits", from: "retain: {classes: [0, 1, 2, 3]}", to: "retain: {classes: [0, 1, 2, 5]}",
            pointer: "/data/retain/classes", message: "share classes [5]", unlearnOnly: true),
        Breakage(
            what: "missing class", from: "forget: {classes: [5, 7, 9]}", to: "forget: {classes: [5, 7, 19]}",
            pointer: "/data/forget/classes/2", message: "class 19 does not exist", unlearnOnly: true),
        Breakage(
            what: "missing pretrain spec", from: "pretrain.yaml", to: "pretrian.yaml", pointer: "/model/pretrain",
            message: "does not exist", unlearnOnly: true),
    ]

    /// The shipped pretraining specs (MAGE's tokenizer stage among them).
    static let pretrainConfigs: Set<String> = Set(
        configs.filter {
            (try? String(contentsOfFile: Repo.path("configs/\($0)"), encoding: .utf8))?.contains("\nkind: pretrain")
                ?? false
        })

    static let cases: [(String, Breakage)] = configs.flatMap { config in
        breakages.filter { !$0.unlearnOnly || !pretrainConfigs.contains(config) }.map { (config, $0) }
    }

    @Test(arguments: cases)
    func brokenCopyFailsWithALocatedError(config: String, breakage: Breakage) throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let original = try String(contentsOfFile: Repo.path("configs/\(config)"), encoding: .utf8)
        for other in Self.pretrainConfigs {
            try dir.write(other, try String(contentsOfFile: Repo.path("configs/\(other)"), encoding: .utf8))
        }
        #expect(original.contains(breakage.from), "\(config) has no '\(breakage.from)'")
        let broken = original.replacing(breakage.from, with: breakage.to)
        let lineOfChange =
            broken.prefix(upTo: broken.firstRange(of: breakage.to)!.lowerBound).filter { $0 == "\n" }.count + 1
        try dir.write("broken.yaml", broken)
        let path = dir.path + "/broken.yaml"
        #expect {
            try Planner(workingDirectory: dir.path).plan(specPath: path)
        } throws: { error in
            guard let e = error as? SpecError else { return false }
            guard let d = e.diagnostics.first(where: { $0.description.contains(breakage.message) }) else {
                Issue.record("no diagnostic says '\(breakage.message)': \(e)")
                return false
            }
            let line = breakage.what == "duplicate key" ? lineOfChange + 1 : lineOfChange
            #expect(d.pointer.description == breakage.pointer, "\(d)")
            #expect(d.mark?.file == path)
            #expect(breakage.what == "syntax error" || d.mark?.line == line, "\(d) (expected line \(line))")
            return d.description.hasPrefix("\(path):")
        }
    }
}
