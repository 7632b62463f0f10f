namespace Hypervisor.Host.Service;

/// <summary>Where a managed VM is in its life. The API shows these names in lower case.</summary>
public enum VmState
{
    /// <summary>The image is loaded; the guest has not run.</summary>
    Created,
    /// <summary>The VM's thread is running the guest.</summary>
    Running,
    /// <summary>The guest is held between two runs; resume continues it exactly there.</summary>
    Paused,
    /// <summary>The guest ended by itself (HLT, isa-debug-exit) or the host stopped it. Final.</summary>
    Stopped,
    /// <summary>The guest shut down (triple fault) or the machine failed (internal error,
    /// unimplemented instruction). Final.</summary>
    Failed,
}

/// <summary>What <c>PUT /vms/{id}/actions</c> can ask.</summary>
public enum VmAction
{
    Start,
    Pause,
    Resume,
    Stop,
}

public static class VmStates
{
    public static string Name(VmState state) => state.ToString().ToLowerInvariant();

    public static string Name(VmAction action) => action.ToString().ToLowerInvariant();

    public static IReadOnlyList<string> ActionNames { get; } = Enum.GetValues<VmAction>().Select(Name).ToArray();

    public static VmAction? ParseAction(string text) =>
        Enum.GetValues<VmAction>().Cast<VmAction?>().FirstOrDefault(a => Name(a!.Value) == text);

    public static bool IsFinal(VmState state) => state is VmState.Stopped or VmState.Failed;
}
