import Foundation
import LetheRuns
import LetheSpec
import Testing

@testable import LetheSweep

/// A temporary folder with a tiny pretrain spec and an unlearning spec on it (Fashion-MNIST).
struct SweepFolder {
    let path: String

    static let model =
        "{architecture: mae, pretrain: pre.yaml, mae: {width: 16, depth: 1, heads: 2, decoder_width: 8, decoder_depth: 1, decoder_heads: 2}}"

    init(metrics: String = "[psnr, ssim]") throws {
        path = NSTemporaryDirectory() + "lethe-sweep-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try write(
            "pre.yaml",
            """
            version: 1
            kind: pretrain
            data: {dataset: fashion-mnist, per_class_limit: 8}
            model: \(Self.model.replacingOccurrences(of: "pretrain: pre.yaml, ", with: ""))
            train: {steps: 2, batch_size: 8}
            evaluate: {test_per_class: 1}
            """)
        try write(
            "un.yaml",
            """
            version: 1
            kind: unlearn
            data: {dataset: fashion-mnist, per_class_limit: 8, forget: {classes: [5, 7]}, retain: {classes: [0, 1]}}
            model: \(Self.model)
            unlearn: {method: ours, alpha: 0.25}
            train: {steps: 3, batch_size: 4, forget_batch_size: 4}
            evaluate: {test_per_class: 2, metrics: \(metrics), grid_samples: 2}
            """)
    }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: path + "/" + name, atomically: true, encoding: .utf8)
    }

    func plan(_ sweep: String) throws -> SweepPlan {
        try write("sweep.yaml", sweep)
        return try SweepPlanner(workingDirectory: path).plan(path: path + "/sweep.yaml")
    }

    /// The diagnostics of planning `sweep` (which must fail).
    func problems(_ sweep: String) throws -> [Diagnostic] {
        try write("sweep.yaml", sweep)
        do {
            _ = try SweepPlanner(workingDirectory: path).plan(path: path + "/sweep.yaml")
        } catch {
            return error.diagnostics
        }
        Issue.record("the sweep planned, but it should not")
        return []
    }
}

@Suite struct SweepPlanTests {
    /// The grid's product in the order written (last key fastest), the zip's paired values as one
    /// dimension, `set` in every member; each member's hash is the one `lethe run BASE --set ...` gets.
    @Test func gridZipAndSetExpandInOrder() throws {
        let folder = try SweepFolder()
        let plan = try folder.plan(
            """
            version: 1
            kind: sweep
            base: un.yaml
            set: {evaluate.bootstrap: 20}
            grid:
              unlearn.alpha: [0.1, 0.5]
              seed: [0, 1, 2]
            zip:
              train.steps: [3, 4]
              train.batch_size: [4, 8]
            """)
        #expect(plan.members.count == 12)
        #expect(plan.varied == ["unlearn.alpha", "seed", "train.steps", "train.batch_size"])
        var expected: [(Double, Int, Int, Int)] = []
        for a in [0.1, 0.5] {
            for s in [0, 1, 2] { for (t, b) in [(3, 4), (4, 8)] { expected.append((a, s, t, b)) } }
        }
        for (m, e) in zip(plan.members, expected) {
            let spec = m.plan.spec
            #expect(spec.unlearn?.alpha == e.0 && spec.seed == UInt64(e.1))
            #expect(spec.train.steps == e.2 && spec.train.batchSize == e.3)
            #expect(spec.evaluate.bootstrap == 20)
            #expect(m.label == "unlearn.alpha=\(e.0) seed=\(e.1) train.steps=\(e.2) train.batch_size=\(e.3)")
            // The command line the jobs run plans to the same hash.
            let args = m.runArguments
            var overrides: [Override] = []
            for (i, a) in args.enumerated() where a == "--set" { overrides.append(try Override(parsing: args[i + 1])) }
            let direct = try Planner(workingDirectory: "/").plan(
                specPath: folder.path + "/un.yaml", overrides: overrides)
            #expect(direct.configHash == m.plan.configHash)
            #expect(args.last == m.plan.configHash && args.dropLast().last == "--expect-hash")
        }
        #expect(Set(plan.members.map(\.plan.configHash)).count == 12)
    }

    /// Several bases: every base with every grid point, and a `base` column.
    @Test func severalBasesMakeABaseColumn() throws {
        let folder = try SweepFolder()
        try folder.write(
            "max.yaml",
            try String(contentsOfFile: folder.path + "/un.yaml", encoding: .utf8).replacingOccurrences(
                of: "method: ours", with: "method: max-loss"))
        let plan = try folder.plan("version: 1\nkind: sweep\nbase: [un.yaml, max.yaml]\ngrid: {seed: [0, 1]}\n")
        #expect(plan.varied == ["base", "seed"])
        #expect(
            plan.members.map { SweepPlan.text($0.settings[0].value) } == ["un.yaml", "un.yaml", "max.yaml", "max.yaml"])
        #expect(plan.members.map { $0.plan.spec.unlearn?.method.rawValue } == ["ours", "ours", "max-loss", "max-loss"])
    }

    /// However many members need them, the original's pretraining and the feature classifier are one
    /// stage each, before the members; a finished stage has no job and nothing waits for it.
    @Test func sharedStagesAreBuiltOnceBeforeTheirMembers() throws {
        let folder = try SweepFolder(metrics: "[psnr, fid]")
        let plan = try folder.plan(
            "version: 1\nkind: sweep\nbase: un.yaml\ngrid: {unlearn.alpha: [0.1, 0.5, 1.0], seed: [0, 1]}\n")
        #expect(plan.stages.map(\.kind) == [.pretrain, .classifier])
        let pretrain = plan.stages[0]
        let classifier = plan.stages[1]
        #expect(classifier.needs == [pretrain.configHash])
        #expect(classifier.arguments.last == "--dependencies-only")
        for m in plan.members { #expect(m.needs == [pretrain.configHash, classifier.configHash]) }
        let jobs = plan.pendingJobs
        #expect(jobs.count == 8)
        #expect(jobs[0].name == pretrain.name && jobs[1].needs == [pretrain.name])
        #expect(jobs[2...].allSatisfy { $0.needs == [pretrain.name, classifier.name] })
        #expect(plan.memberStates().allSatisfy { $0 == "waiting for a shared stage" })

        // The pretraining finished: no job for it, and the classifier no longer waits.
        try FileManager.default.createDirectory(atPath: pretrain.runDirectory, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: pretrain.runDirectory + "/manifest.json", contents: Data("{}".utf8))
        let after = plan.pendingJobs
        #expect(after.count == 7 && after[0].name == classifier.name && after[0].needs.isEmpty)
        #expect(after[1...].allSatisfy { $0.needs == [classifier.name] })
        // A finished member has no job either.
        let first = plan.members[0].plan.runDirectory
        try FileManager.default.createDirectory(atPath: first, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: first + "/manifest.json", contents: Data("{}".utf8))
        #expect(plan.pendingJobs.count == 6)
        #expect(plan.memberStates()[0] == "finished")
    }

    /// The hash follows the members (their config hashes and settings), not labels or resources.
    @Test func theSweepHashFollowsItsMembers() throws {
        let folder = try SweepFolder()
        let base = "version: 1\nkind: sweep\nbase: un.yaml\ngrid: {unlearn.alpha: [0.1, 0.5]}\n"
        let reference = try folder.plan(base).hash
        #expect(
            try folder.plan(base + "name: other\ndescription: x\nslurm: {time: '9:00', mem: 2G}\n").hash == reference)
        #expect(try folder.plan(base.replacingOccurrences(of: "0.5", with: "0.6")).hash != reference)
        #expect(try folder.plan(base.replacingOccurrences(of: "[0.1, 0.5]", with: "[0.5, 0.1]")).hash != reference)
        #expect(try folder.plan(base + "set: {seed: 4}\n").hash != reference)
        let plan = try folder.plan(base)
        #expect(plan.directory == folder.path + "/runs/sweeps/" + plan.hash)
    }

    /// Mistakes are reported at their place in the sweep file (file:line:column), like every spec's.
    @Test func mistakesAreLocatedInTheSweepFile() throws {
        let folder = try SweepFolder()
        let file = folder.path + "/sweep.yaml"
        func expectOne(_ sweep: String, line: Int, _ words: String, file expectedFile: String? = nil) throws {
            let problems = try folder.problems(sweep)
            #expect(problems.count >= 1, "\(sweep)")
            let hit = problems.first { $0.message.contains(words) }
            #expect(hit != nil, "no problem says '\(words)': \(problems.map(\.description))")
            #expect(hit?.mark?.file == (expectedFile ?? file), "\(hit?.description ?? "")")
            #expect(hit?.mark?.line == line, "\(hit?.description ?? "")")
        }
        let head = "version: 1\nkind: sweep\nbase: un.yaml\n"
        try expectOne(head + "zip:\n  seed: [0, 1]\n  unlearn.alpha: [0.1]\n", line: 6, "equally long")
        try expectOne(head + "set: {seed: 3}\ngrid:\n  seed: [0, 1]\n", line: 6, "also in set")
        try expectOne(head + "grid:\n  unlearn.alpha: [0.1,\n    \"much\"]\n", line: 6, "number")
        try expectOne(head + "grid:\n  unlearn.alpah: [0.1]\n", line: 5, "alpah")
        try expectOne(head + "grid:\n  unlearn..alpha: [0.1]\n", line: 5, "pattern")
        try expectOne(head + "grid:\n  seed: []\n", line: 5, "at least 1")
        try expectOne("version: 1\nkind: sweep\nbase: nowhere.yaml\n", line: 3, "does not exist")
        try expectOne(head + "grdi: {seed: [1]}\n", line: 4, "grdi")
        try expectOne(head + "slurm:\n  partition: \"a b\"\n", line: 5, "pattern")
        try expectOne(head + "grid:\n  unlearn.alpha: [1, 0.5, 1.0]\n", line: 5, "are the same run")
        try folder.write("inner.yaml", "version: 1\nkind: sweep\nbase: un.yaml\n")
        try expectOne("version: 1\nkind: sweep\nbase: [un.yaml, inner.yaml]\n", line: 3, "itself a sweep")
        // A run command given a sweep says what to do instead.
        try folder.write("s.yaml", head)
        do {
            _ = try Planner(workingDirectory: folder.path).plan(specPath: folder.path + "/s.yaml")
            Issue.record("lethe run planned a sweep")
        } catch {
            #expect(error.diagnostics.first?.message.contains("lethe sweep") == true)
            #expect(error.diagnostics.first?.mark?.line == 2)
        }
    }
}
