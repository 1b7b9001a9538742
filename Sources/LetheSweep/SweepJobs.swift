import Foundation
import LetheRuns
import LetheSpec

/// One process of a sweep: a `lethe run` that builds a shared stage or a member, after the jobs it
/// needs. The local pool and the Slurm executor run the same jobs with the same arguments.
public struct SweepJob: Sendable, Equatable {
    public enum Role: Sendable, Equatable {
        case stage(SweepStage.Kind)
        case member(Int)
    }
    /// `pretrain-<hash12>`, `classifier-<hash12>`, `member-0007`.
    public var name: String
    public var role: Role
    /// `lethe` arguments, without `--threads`.
    public var arguments: [String]
    /// Names of the jobs that must succeed first.
    public var needs: [String]
    public var runDirectory: String
    public var label: String
}

extension SweepPlan {
    /// The jobs that build what is not finished yet, stages first (in dependency order), then members;
    /// a finished stage or member has no job, and nothing waits for it.
    public var pendingJobs: [SweepJob] { jobs(includingFinished: false) }

    /// Every job of the sweep (what the Slurm executor's scripts list), finished ones included when
    /// `includingFinished`.
    public func jobs(includingFinished: Bool) -> [SweepJob] {
        var names: [String: String] = [:]  // stage hash -> job name, for unfinished stages
        var out: [SweepJob] = []
        for stage in stages where includingFinished || !stage.finished {
            names[stage.configHash] = stage.name
            out.append(
                SweepJob(
                    name: stage.name, role: .stage(stage.kind), arguments: stage.arguments,
                    needs: stage.needs.compactMap { names[$0] }, runDirectory: stage.runDirectory,
                    label: "\(stage.kind.rawValue) \(stage.configHash.prefix(16))"))
        }
        for member in members where includingFinished || !member.finished {
            out.append(
                SweepJob(
                    name: Self.memberJobName(member.index), role: .member(member.index),
                    arguments: member.runArguments,
                    needs: member.needs.compactMap { names[$0] }, runDirectory: member.plan.runDirectory,
                    label: "member \(member.index) (\(member.label))"))
        }
        return out
    }

    public static func memberJobName(_ index: Int) -> String {
        "member-" + String(repeating: "0", count: max(0, 4 - String(index).count)) + String(index)
    }

    /// Each member's state now: finished, running (a process holds its stage lock), interrupted (with
    /// the step its saved state resumes from), waiting for a shared stage, or pending.
    public func memberStates() -> [String] {
        members.map { m in
            let state = SweepRecord.state(of: m.plan.runDirectory)
            if state == "pending",
                m.needs.contains(where: { hash in stages.first { $0.configHash == hash }?.finished == false })
            {
                return "waiting for a shared stage"
            }
            return state
        }
    }
}
